//! The Parquet tables an extraction writes.
//!
//! | table | file | columns |
//! |-------|------|---------|
//! | `steering` v1 | `layer_scores.parquet` | layer, trait (empty = unsteered), sign (+1/-1/0), prompt_index, alpha, divergence, text; metadata `best_layer` |
//! | `separation` v2 | `separation.parquet` | trait, layer, heldout_auroc (questions held out), heldout_auroc_strict (questions and system prompts held out), probe_accuracy (null where not computed) |
//! | `trait_cosines` v1 | `cosines.parquet` | layer, trait_a, trait_b, cosine |

use crate::directions::Directions;
use crate::error::Result;
use crate::layer::SteeringRow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::TableKind;
use tables::arrow::array::{ArrayRef, Float64Array, Int8Array, RecordBatch, UInt32Array};
use tables::arrow::datatypes::{DataType, Field, Schema};

pub const STEERING_TABLE: TableKind = TableKind {
    name: "steering",
    version: 1,
};
pub const SEPARATION_TABLE: TableKind = TableKind {
    name: "separation",
    version: 2,
};
pub const COSINES_TABLE: TableKind = TableKind {
    name: "trait_cosines",
    version: 1,
};

/// One row of the separation table.
#[derive(Debug, Clone, PartialEq)]
pub struct SeparationRow {
    pub trait_name: String,
    pub layer: usize,
    /// Questions held out.
    pub heldout_auroc: f64,
    /// Questions and system prompts held out.
    pub heldout_auroc_strict: f64,
    pub probe_accuracy: Option<f64>,
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| crate::TraitsError::Input(format!("building a results table: {e}")))
}

use tables::col::strings;

/// Write the steering search (every generation) with `best_layer` in the metadata.
pub fn write_steering(
    path: &Path,
    rows: &[SteeringRow],
    best_layer: usize,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let b = batch(
        vec![
            Field::new("layer", DataType::UInt32, false),
            Field::new("trait", DataType::Utf8, false),
            Field::new("sign", DataType::Int8, false),
            Field::new("prompt_index", DataType::UInt32, false),
            Field::new("alpha", DataType::Float64, false),
            Field::new("divergence", DataType::Float64, false),
            Field::new("text", DataType::Utf8, false),
        ],
        vec![
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.layer as u32),
            )),
            strings(rows.iter().map(|r| r.trait_name.as_str())),
            Arc::new(Int8Array::from_iter_values(rows.iter().map(|r| r.sign))),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.prompt_index as u32),
            )),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.alpha))),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.divergence),
            )),
            strings(rows.iter().map(|r| r.text.as_str())),
        ],
    )?;
    let mut meta = meta.clone();
    meta.insert("best_layer".into(), best_layer.to_string());
    tables::write_parquet(path, &b, STEERING_TABLE, &meta)?;
    Ok(())
}

/// Write per-trait, per-layer separation scores.
pub fn write_separation(
    path: &Path,
    rows: &[SeparationRow],
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let b = batch(
        vec![
            Field::new("trait", DataType::Utf8, false),
            Field::new("layer", DataType::UInt32, false),
            Field::new("heldout_auroc", DataType::Float64, false),
            Field::new("heldout_auroc_strict", DataType::Float64, false),
            Field::new("probe_accuracy", DataType::Float64, true),
        ],
        vec![
            strings(rows.iter().map(|r| r.trait_name.as_str())),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.layer as u32),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.heldout_auroc),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.heldout_auroc_strict),
            )),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|r| r.probe_accuracy),
            )),
        ],
    )?;
    tables::write_parquet(path, &b, SEPARATION_TABLE, meta)?;
    Ok(())
}

/// Write the pairwise cosine matrix of the directions at `layer` (the data of Fig. 6).
pub fn write_cosines(
    path: &Path,
    directions: &Directions,
    layer: usize,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let cos = directions.cosines(layer);
    let names = &directions.traits;
    let pairs: Vec<(usize, usize)> = (0..names.len())
        .flat_map(|a| (0..names.len()).map(move |b| (a, b)))
        .collect();
    let b = batch(
        vec![
            Field::new("layer", DataType::UInt32, false),
            Field::new("trait_a", DataType::Utf8, false),
            Field::new("trait_b", DataType::Utf8, false),
            Field::new("cosine", DataType::Float64, false),
        ],
        vec![
            Arc::new(UInt32Array::from_iter_values(
                pairs.iter().map(|_| layer as u32),
            )),
            strings(pairs.iter().map(|(a, _)| names[*a].as_str())),
            strings(pairs.iter().map(|(_, b)| names[*b].as_str())),
            Arc::new(Float64Array::from_iter_values(
                pairs.iter().map(|(a, b)| cos[*a][*b]),
            )),
        ],
    )?;
    tables::write_parquet(path, &b, COSINES_TABLE, meta)?;
    Ok(())
}
