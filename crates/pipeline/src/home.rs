//! The project root, and the one function that resolves a manifest's paths against it.
//!
//! A manifest's relative paths (data files, banks, `.jsonl` datasets, model directories,
//! the store, results and figures) name files of the project, not of whatever directory
//! the command happens to be run from: `traitwatch plan experiments/x.toml` must mean
//! the same from the checkout, from inside `experiments/`, or from a Slurm node. The root
//! is, in order:
//!
//! 1. `$TRAITWATCH_HOME`, when set;
//! 2. the nearest directory above the manifest holding [`MARKER`] or the shipped data
//!    (`data/traits/`);
//! 3. the same search upwards from the current directory (manifests kept outside the
//!    project, e.g. in a temporary directory, run from the checkout).
//!
//! `include` paths stay relative to the including file: they name manifests, not data.

use crate::manifest::Loaded;
use crate::{PipelineError, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable naming the project root.
pub const HOME_ENV: &str = "TRAITWATCH_HOME";

/// An empty file that marks a directory as a project root (for projects that keep their
/// own data elsewhere than `data/traits/`).
pub const MARKER: &str = ".traitwatch-home";

/// The shipped data every checkout has.
const DATA_DIR: &str = "data/traits";

/// Resolve `path` against the project `root`: the single place relative manifest paths
/// become real ones (absolute paths are kept).
pub fn resolve(root: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}

/// Whether `dir` is a project root.
fn is_root(dir: &Path) -> bool {
    dir.join(MARKER).is_file() || dir.join(DATA_DIR).is_dir()
}

fn search_up(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| is_root(d))
        .map(Path::to_path_buf)
}

/// The project root for `manifest`; `home` is `$TRAITWATCH_HOME` and `cwd` the current
/// directory (parameters, so tests need not touch the process environment).
pub fn find_root(manifest: &Path, home: Option<&OsStr>, cwd: Option<&Path>) -> Result<PathBuf> {
    let error = |message: String| PipelineError::Manifest {
        path: manifest.to_path_buf(),
        message,
    };
    if let Some(home) = home.filter(|h| !h.is_empty()) {
        let dir = Path::new(home);
        return dir.canonicalize().map_err(|e| {
            error(format!(
                "{HOME_ENV}={} is not a usable directory: {e}",
                dir.display()
            ))
        });
    }
    let from_manifest = manifest
        .canonicalize()
        .ok()
        .and_then(|m| m.parent().and_then(search_up));
    let from_cwd = || {
        cwd.and_then(|c| c.canonicalize().ok())
            .and_then(|c| search_up(&c))
    };
    from_manifest.or_else(from_cwd).ok_or_else(|| {
        error(format!(
            "cannot find the project root: no directory above the manifest{} holds \
             `{DATA_DIR}/` or a `{MARKER}` file; set {HOME_ENV} to the checkout",
            cwd.map(|c| format!(" or above {}", c.display()))
                .unwrap_or_default()
        ))
    })
}

impl Loaded {
    /// A manifest path resolved against the project root (see [`resolve`]).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        resolve(&self.root, path)
    }

    /// Where `[experiment] results` point (default `results/<name>`), resolved.
    pub fn results_dir(&self) -> PathBuf {
        let e = &self.manifest.experiment;
        self.experiment_dir(e.results.as_deref(), "results")
    }

    /// Where `[experiment] figures` point (default `figures/<name>`), resolved.
    pub fn figures_dir(&self) -> PathBuf {
        let e = &self.manifest.experiment;
        self.experiment_dir(e.figures.as_deref(), "figures")
    }

    /// `set`, else `<default_parent>/<experiment name>`, resolved.
    fn experiment_dir(&self, set: Option<&Path>, default_parent: &str) -> PathBuf {
        let name = &self.manifest.experiment.name;
        let dir = set.map_or_else(|| Path::new(default_parent).join(name), Path::to_path_buf);
        self.resolve(&dir)
    }

    /// The artifact store, resolved.
    pub fn store_dir(&self) -> PathBuf {
        self.resolve(&self.manifest.experiment.store)
    }

    /// Models whose source is a path that does not exist (yet): `plan` lists them, `run`
    /// refuses to start. Each with its key and the path tried.
    pub fn missing_models(&self) -> Vec<(String, String)> {
        self.manifest
            .models
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                is_path_like(&m.source) && !self.resolve(Path::new(&m.source)).exists()
            })
            .map(|(i, m)| {
                (
                    format!("models.{i}.source"),
                    self.resolve(Path::new(&m.source)).display().to_string(),
                )
            })
            .collect()
    }

    /// `path` (set by `key`) resolved, or an error naming the manifest, the key and the
    /// path tried.
    pub fn existing(&self, key: &str, path: &Path) -> Result<PathBuf> {
        let tried = self.resolve(path);
        if tried.exists() {
            return Ok(tried);
        }
        let relative = if path.is_absolute() {
            String::new()
        } else {
            format!(" (relative to the project root {})", self.root.display())
        };
        let mut message = format!(
            "`{}` does not exist: tried {}{relative}",
            path.display(),
            tried.display()
        );
        if self.sources.locate(key).is_none() {
            // A default the manifest did not set: name the manifest all the same.
            message.push_str(&format!(" (default of {})", self.path.display()));
        }
        Err(self.invalid(key, message))
    }

    /// The data files the manifest names exist (relative to the project root).
    pub(crate) fn check_files(&self) -> Result<()> {
        let m = &self.manifest;
        let files = [
            ("traits.bank", Some(&m.traits.bank)),
            ("traits.questions", Some(&m.traits.questions)),
            ("traits.semantic_bank", m.traits.semantic_bank.as_ref()),
            ("drift.prompts", Some(&m.drift.prompts)),
            ("em.items", Some(&m.em.items)),
            ("em.controls", m.em.controls.as_ref()),
        ];
        for (key, file) in files {
            if let Some(file) = file {
                self.existing(key, file)?;
            }
        }
        let p = &m.perturbations;
        for (field, list) in [("calibration", &p.calibration), ("held_out", &p.held_out)] {
            for name in list.iter().filter(|n| n.ends_with(".jsonl")) {
                self.existing(&format!("perturbations.{field}"), Path::new(name))?;
            }
        }
        Ok(())
    }
}

/// A model source that names a file or directory rather than a preset.
pub fn is_path_like(source: &str) -> bool {
    source.contains('/') || source.ends_with(".gguf")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_the_root_above_the_manifest_then_the_cwd_and_honours_the_env() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("data/traits")).unwrap();
        std::fs::create_dir_all(root.join("experiments/sub")).unwrap();
        let manifest = root.join("experiments/sub/x.toml");
        std::fs::write(&manifest, "").unwrap();
        assert_eq!(find_root(&manifest, None, None).unwrap(), root);

        // Outside any project: the cwd's project, else an error naming the manifest.
        let other = tempfile::tempdir().unwrap();
        let lone = other.path().join("lone.toml");
        std::fs::write(&lone, "").unwrap();
        let sub = root.join("experiments");
        assert_eq!(find_root(&lone, None, Some(&sub)).unwrap(), root);
        let err = find_root(&lone, None, Some(other.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lone.toml") && err.contains(HOME_ENV), "{err}");

        // A marker file makes a root; the environment wins over both.
        std::fs::write(other.path().join(MARKER), "").unwrap();
        let marked = other.path().canonicalize().unwrap();
        assert_eq!(find_root(&lone, None, None).unwrap(), marked);
        let env = root.as_os_str();
        assert_eq!(find_root(&lone, Some(env), None).unwrap(), root);
        let err = find_root(&lone, Some(OsStr::new("/no/such/home")), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRAITWATCH_HOME=/no/such/home"), "{err}");
    }

    #[test]
    fn resolves_relative_paths_and_keeps_absolute_ones() {
        let root = Path::new("/project");
        assert_eq!(
            resolve(root, Path::new("data/x.toml")),
            Path::new("/project/data/x.toml")
        );
        assert_eq!(resolve(root, Path::new("/abs/x")), Path::new("/abs/x"));
        assert!(is_path_like("models/llama") && is_path_like("m.gguf"));
        assert!(!is_path_like("smollm2-135m"));
    }
}
