//! Column builders and a table writer shared by the figure tests.
#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used, clippy::print_stdout)] // test helpers; the "SKIPPED" line

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::TableKind;
use tables::arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};

pub fn strings<S: AsRef<str>>(v: &[S]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v.iter().map(|s| s.as_ref())))
}
pub fn u64s(v: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(v))
}
pub fn f64s(v: impl IntoIterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(v))
}

/// A table of kind `name` (version 1) with `meta` in its footer.
pub fn write(
    path: &Path,
    name: &'static str,
    columns: Vec<(&str, ArrayRef)>,
    meta: &[(&str, &str)],
) {
    let batch = tables::record_batch(columns).unwrap();
    let kind = TableKind { name, version: 1 };
    let meta: BTreeMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tables::write_parquet(path, &batch, kind, &meta).unwrap();
}

pub fn font() -> bool {
    match figures::style::ensure_font() {
        Ok(()) => true,
        Err(e) => {
            println!("SKIPPED: no font ({e})");
            false
        }
    }
}
