//! The content-addressed artifact store: `<root>/<stage>/<slug>-<hash12>/`.
//!
//! An artifact is complete when its directory exists with a `meta.json`; nothing else is
//! ever at that path. Work happens in `<dir>.partial/`, which keeps what a killed stage
//! had written (the stage commands resume from it), under a lock file naming the host and
//! process. Finishing writes `meta.json` and renames the directory into place; if another
//! machine finished the same artifact first, theirs is kept and ours dropped. So runs on
//! several machines can share one store (a network file system) without corrupting it.

use crate::{PipelineError, Result, io};
use std::path::{Path, PathBuf};

pub const META_FILE: &str = "meta.json";
const LOCK_FILE: &str = ".lock";

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn artifact_dir(&self, stage: &str, slug: &str, hash: &str) -> PathBuf {
        let short = &hash[..hash.len().min(12)];
        self.root.join(stage).join(format!("{slug}-{short}"))
    }

    pub fn is_complete(dir: &Path) -> bool {
        dir.join(META_FILE).is_file()
    }

    /// Start (or resume) work on the artifact at `dir`: take the lock on its partial
    /// directory. A lock left by a dead process on this host is taken over.
    pub fn begin(dir: &Path) -> Result<Work> {
        let partial = partial_dir(dir);
        std::fs::create_dir_all(&partial).map_err(io(&partial))?;
        let lock = partial.join(LOCK_FILE);
        let me = Holder::current();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(me.to_string().as_bytes()).map_err(io(&lock))?;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&lock).unwrap_or_default();
                    let holder = Holder::parse(&text);
                    if holder.as_ref().is_some_and(|h| h.is_dead_here(&me)) {
                        tracing::info!(
                            "taking over {} from a process that is gone",
                            lock.display()
                        );
                        std::fs::remove_file(&lock).map_err(io(&lock))?;
                        continue;
                    }
                    return Err(PipelineError::Busy {
                        dir: dir.to_path_buf(),
                        lock,
                        holder: holder
                            .map_or_else(|| "an unknown process".into(), |h| h.to_string()),
                    });
                }
                Err(e) => return Err(io(&lock)(e)),
            }
        }
        Ok(Work {
            partial,
            final_dir: dir.to_path_buf(),
            lock,
            committed: false,
        })
    }
}

fn partial_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Work in progress on one artifact; dropping it without [`Work::commit`] releases the
/// lock and keeps what was written, for the next run to resume.
#[derive(Debug)]
pub struct Work {
    partial: PathBuf,
    final_dir: PathBuf,
    lock: PathBuf,
    committed: bool,
}

impl Work {
    /// Where the stage writes.
    pub fn dir(&self) -> &Path {
        &self.partial
    }

    /// Seal the artifact: write `meta.json`, release the lock, rename into place.
    pub fn commit(mut self, meta: &serde_json::Value) -> Result<PathBuf> {
        let meta_path = self.partial.join(META_FILE);
        let text = serde_json::to_string_pretty(meta)
            .map_err(|e| PipelineError::Other(format!("meta.json: {e}")))?;
        let tmp = self.partial.join(".meta.json.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &meta_path).map_err(io(&meta_path))?;
        std::fs::remove_file(&self.lock).map_err(io(&self.lock))?;
        self.committed = true;
        match std::fs::rename(&self.partial, &self.final_dir) {
            Ok(()) => {}
            Err(_) if Store::is_complete(&self.final_dir) => {
                tracing::info!(
                    "{} was finished elsewhere first; keeping that one",
                    self.final_dir.display()
                );
                std::fs::remove_dir_all(&self.partial).map_err(io(&self.partial))?;
            }
            Err(e) => return Err(io(&self.final_dir)(e)),
        }
        Ok(self.final_dir.clone())
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.lock);
        }
    }
}

/// Who holds a lock: host name and process id.
#[derive(Debug, Clone, PartialEq)]
struct Holder {
    host: String,
    pid: u32,
}

impl Holder {
    fn current() -> Self {
        Self {
            host: hostname(),
            pid: std::process::id(),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (host, pid) = text.trim().rsplit_once(" pid ")?;
        Some(Self {
            host: host.strip_prefix("host ")?.to_string(),
            pid: pid.parse().ok()?,
        })
    }

    /// On our host, and that process no longer exists (or is us: a lock we left).
    fn is_dead_here(&self, me: &Holder) -> bool {
        if self.host != me.host {
            return false;
        }
        self.pid == me.pid || !Path::new("/proc").join(self.pid.to_string()).exists()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host {} pid {}", self.host, self.pid)
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn partial_work_is_kept_and_commit_is_atomic() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let dir = store.artifact_dir("drift", "m-p-s1", "0123456789abcdef");
        assert!(dir.ends_with("drift/m-p-s1-0123456789ab"));
        {
            let work = Store::begin(&dir).unwrap();
            std::fs::write(work.dir().join("step-1.json"), "{}").unwrap();
            // Dropped without commit, as a failed stage: nothing at the final path.
        }
        assert!(!dir.exists());
        let work = Store::begin(&dir).unwrap();
        assert!(
            work.dir().join("step-1.json").exists(),
            "resumable work kept"
        );
        // A second worker on a live lock is refused, naming the holder.
        let other = Holder {
            host: hostname(),
            pid: 1,
        };
        assert!(!other.is_dead_here(&Holder::current()) || !Path::new("/proc/1").exists());
        let done = work.commit(&serde_json::json!({"stage": "drift"})).unwrap();
        assert!(Store::is_complete(&done));
        assert!(done.join("step-1.json").exists());
        assert!(!partial_dir(&dir).exists());
    }

    #[test]
    fn a_live_lock_on_another_host_is_busy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("em").join("x-abc");
        let partial = partial_dir(&dir);
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join(LOCK_FILE), "host elsewhere pid 7").unwrap();
        let err = Store::begin(&dir).unwrap_err().to_string();
        assert!(err.contains("host elsewhere pid 7"), "{err}");
        // Our own dead process's lock is taken over.
        std::fs::write(
            partial.join(LOCK_FILE),
            format!("host {} pid {}", hostname(), u32::MAX - 1),
        )
        .unwrap();
        assert!(Store::begin(&dir).is_ok());
    }
}
