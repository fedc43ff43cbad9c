//! Drawing an experiment's figures and tables from its results (the figures crate).

use anyhow::Result;
use pipeline::{Loaded, Plan};
use std::path::Path;

pub fn make(_loaded: &Loaded, _plan: &Plan, _results: &Path, _manifest: &Path) -> Result<()> {
    Ok(())
}
