//! What a stage's hash records of its inputs that are not artifacts: data files by their
//! contents, models by their files' names, sizes and times.

use crate::Result;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a data file (they are small); a missing file is an error naming it.
pub(crate) fn content_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(crate::io(path))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// A model's identity for hashing: a preset by name (the setup step pins its sha256); a
/// file or directory by its files' names, sizes and modification times (weights can be
/// many GB, too slow to hash on every plan). Files are read under the project `root` but
/// named as the manifest wrote the source, so the identity does not depend on where the
/// checkout lives.
pub(crate) fn model_identity(source: &str, root: &Path) -> String {
    let written = Path::new(source);
    let resolved = crate::home::resolve(root, written);
    let path = resolved.as_path();
    let stamp = |p: &Path| -> String {
        let name = match p.strip_prefix(path) {
            Ok(rest) if !rest.as_os_str().is_empty() => written.join(rest),
            _ => written.to_path_buf(),
        };
        match std::fs::metadata(p) {
            Ok(md) => {
                let mtime = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                format!("{}:{}:{mtime}", name.display(), md.len())
            }
            Err(_) => format!("{}:missing", name.display()),
        }
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        entries
            .iter()
            .map(|p| stamp(p))
            .collect::<Vec<_>>()
            .join(",")
    } else if path.exists() {
        stamp(path)
    } else {
        format!("preset:{source}")
    }
}
