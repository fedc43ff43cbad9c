//! A persistent cache of judge replies, so a re-run (or a resumed run) asks the judge only
//! what it has not answered yet. One JSON line per judgement, appended and flushed as each
//! reply arrives; the key is a hash of (judge model, mode, full judge prompt), and the prompt
//! contains the question and the answer. A line cut short by a killed run is skipped.

use super::verdict::Judgement;
use crate::{EmError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    model: String,
    mode: String,
    judgement: Judgement,
    /// The judge's reply as received (text, or the top tokens in log-probability mode).
    raw: String,
}

/// A cached judgement and the reply it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub judgement: Judgement,
    pub raw: String,
}

#[derive(Debug)]
pub struct JudgeCache {
    path: PathBuf,
    entries: Mutex<HashMap<String, Cached>>,
    file: Mutex<File>,
}

pub fn cache_key(model: &str, mode: &str, prompt: &str) -> String {
    let mut h = Sha256::new();
    for part in [model, mode, prompt] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl JudgeCache {
    /// Open (creating it if needed) the cache file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| EmError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut entries = HashMap::new();
        let mut skipped = 0usize;
        if path.exists() {
            let reader = BufReader::new(File::open(path).map_err(io)?);
            for line in reader.lines() {
                let line = line.map_err(io)?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Entry>(&line) {
                    Ok(e) => {
                        entries.insert(
                            e.key,
                            Cached {
                                judgement: e.judgement,
                                raw: e.raw,
                            },
                        );
                    }
                    Err(_) => skipped += 1,
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(
                path = %path.display(),
                skipped,
                "judge cache: skipped unreadable lines (a run killed mid-write); they will be asked again"
            );
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        // A line cut short leaves no newline: start ours on a fresh line.
        if skipped > 0 {
            file.write_all(b"\n").map_err(io)?;
        }
        tracing::debug!(path = %path.display(), entries = entries.len(), "judge cache opened");
        Ok(Self {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            file: Mutex::new(file),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &str) -> Option<Cached> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Record a judgement: appended to the file and flushed before returning.
    pub fn put(&self, key: &str, model: &str, mode: &str, cached: Cached) -> Result<()> {
        let entry = Entry {
            key: key.to_string(),
            model: model.to_string(),
            mode: mode.to_string(),
            judgement: cached.judgement.clone(),
            raw: cached.raw.clone(),
        };
        let mut line = serde_json::to_string(&entry)
            .map_err(|e| EmError::Input(format!("judge cache entry: {e}")))?;
        line.push('\n');
        let io = |source| EmError::Io {
            path: self.path.clone(),
            source,
        };
        {
            let mut file = self
                .file
                .lock()
                .map_err(|_| EmError::Input("judge cache lock poisoned".into()))?;
            file.write_all(line.as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key.to_string(), cached);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let k1 = cache_key("m", "text", "prompt one");
        let k2 = cache_key("m", "text", "prompt two");
        assert_ne!(k1, cache_key("m2", "text", "prompt one"));
        assert_ne!(k1, cache_key("m", "logprob", "prompt one"));
        {
            let cache = JudgeCache::open(&path).unwrap();
            let c = Cached {
                judgement: Judgement::Score { value: 12.0 },
                raw: "12".into(),
            };
            cache.put(&k1, "m", "text", c).unwrap();
        }
        // A killed run: half a line at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\":\"abc\",\"mod").unwrap();
        drop(f);
        let cache = JudgeCache::open(&path).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&k1).unwrap().judgement.score(), Some(12.0));
        cache
            .put(
                &k2,
                "m",
                "text",
                Cached {
                    judgement: Judgement::Refusal,
                    raw: "REFUSAL".into(),
                },
            )
            .unwrap();
        let cache = JudgeCache::open(&path).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&k2).unwrap().judgement, Judgement::Refusal);
    }
}
