//! The sidecar beside every figure: what it was drawn from.

use crate::style::write_atomically;
use crate::{FigureError, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What the caller knows about where the results came from.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub manifest: Option<PathBuf>,
    pub manifest_sha256: Option<String>,
    pub git_revision: Option<String>,
}

impl Provenance {
    /// Write `<out>/<stem>.json`: the figure, the manifest, the revision and every input
    /// table with its sha256.
    pub fn write(&self, out: &Path, stem: &str, inputs: &[PathBuf]) -> Result<PathBuf> {
        let mut tables = Vec::new();
        for path in inputs {
            let bytes = std::fs::read(path).map_err(|source| FigureError::Io {
                path: path.clone(),
                source,
            })?;
            let hash: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            tables.push(serde_json::json!({"path": path.display().to_string(), "sha256": hash}));
        }
        let json = serde_json::json!({
            "figure": stem,
            "manifest": self.manifest.as_ref().map(|p| p.display().to_string()),
            "manifest_sha256": self.manifest_sha256,
            "git_revision": self.git_revision,
            "figures_version": env!("CARGO_PKG_VERSION"),
            "inputs": tables,
        });
        let path = out.join(format!("{stem}.json"));
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| FigureError::Draw(e.to_string()))?;
        write_atomically(&path, text.as_bytes())?;
        Ok(path)
    }
}
