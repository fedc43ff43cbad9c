//! Tidy Parquet tables, written atomically.
//!
//! Every results table in traitwatch is one Arrow record batch plus key-value metadata
//! (at least `traitwatch.table` and `traitwatch.schema_version`), written to a temporary
//! file beside the target and renamed into place, so a killed run never leaves half a
//! table behind.

pub mod tensor;

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use arrow;

/// Metadata key naming the table kind (e.g. `activations`).
pub const TABLE_KEY: &str = "traitwatch.table";
/// Metadata key holding the table's schema version.
pub const VERSION_KEY: &str = "traitwatch.schema_version";

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        source: arrow::error::ArrowError,
    },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: expected a `{expected}` table (schema version {version}), found {found}")]
    WrongTable {
        path: PathBuf,
        expected: String,
        version: u32,
        found: String,
    },
}

/// A column of `batch` by name, as its Arrow array type, without nulls. Errors name the
/// file, the column and what is wrong (missing, another type, nulls).
pub fn column<'a, T: arrow::array::Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    path: &Path,
) -> Result<&'a T, TableError> {
    let malformed = |reason: String| TableError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| malformed(format!("missing column `{name}`")))?;
    let typed = array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| malformed(format!("column `{name}` has type {}", array.data_type())))?;
    if typed.null_count() > 0 {
        return Err(malformed(format!("column `{name}` has nulls")));
    }
    Ok(typed)
}

/// Identity of one finetuning run: the key columns of every per-run table.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct RunKey {
    /// Model name, e.g. `llama-3.1-8b`.
    pub model: String,
    /// Perturbation (finetuning data set) name.
    pub perturbation: String,
    /// Training seed.
    pub seed: u64,
}

/// A record batch from named columns, its schema taken from the arrays. A column is declared
/// nullable only when it holds nulls (a missing judge score, say), so every column without
/// gaps promises readers it has none.
pub fn record_batch(
    columns: Vec<(&str, arrow::array::ArrayRef)>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let fields: Vec<arrow::datatypes::Field> = columns
        .iter()
        .map(|(name, a)| {
            arrow::datatypes::Field::new(*name, a.data_type().clone(), a.null_count() > 0)
        })
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        arrays,
    )
}

/// Identity of a table kind: its name and schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableKind {
    pub name: &'static str,
    pub version: u32,
}

/// Write `batch` to `path` (zstd-compressed) with `kind` and `extra` in its metadata.
/// The file appears under its final name only once complete.
pub fn write_parquet(
    path: &Path,
    batch: &RecordBatch,
    kind: TableKind,
    extra: &BTreeMap<String, String>,
) -> Result<(), TableError> {
    let io = |source| TableError::Io {
        path: path.to_path_buf(),
        source,
    };
    let pq = |source| TableError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut kv = vec![
        KeyValue::new(TABLE_KEY.to_string(), kind.name.to_string()),
        KeyValue::new(VERSION_KEY.to_string(), kind.version.to_string()),
    ];
    kv.extend(
        extra
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_key_value_metadata(Some(kv))
        .build();
    let tmp = temp_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(pq)?;
        writer.write(batch).map_err(pq)?;
        writer.close().map_err(pq)?;
        std::fs::rename(&tmp, path).map_err(io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A sibling temporary path unique to this process.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "table".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// A table read back: its batches and key-value metadata.
#[derive(Debug)]
pub struct Table {
    pub batches: Vec<RecordBatch>,
    pub metadata: BTreeMap<String, String>,
}

impl Table {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Column builders for the results tables every crate writes.
pub mod col {
    use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
    use std::sync::Arc;

    pub fn strings<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(v))
    }

    pub fn uints(v: impl Iterator<Item = u64>) -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(v))
    }

    /// Nullable floats (None: undefined, e.g. an FNR with no positives).
    pub fn floats(v: impl Iterator<Item = Option<f64>>) -> ArrayRef {
        Arc::new(Float64Array::from_iter(v))
    }
}

/// Every `.parquet` file under `dir`, recursively, sorted (results directories nest tables
/// by stage and run).
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, TableError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TableError> {
        let entries = std::fs::read_dir(dir).map_err(|source| TableError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// The table kind a Parquet file declares in its metadata (None for foreign files), read
/// without loading its rows.
pub fn table_kind(path: &Path) -> Result<Option<String>, TableError> {
    let file = std::fs::File::open(path).map_err(|source| TableError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| TableError::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == TABLE_KEY))
        .and_then(|kv| kv.value.clone()))
}

/// Read a table, checking that it is of `kind` when given.
pub fn read_parquet(path: &Path, kind: Option<TableKind>) -> Result<Table, TableError> {
    let pq = |source| TableError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|source| TableError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let metadata: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    if let Some(kind) = kind {
        let found = format!(
            "`{}` version {}",
            metadata.get(TABLE_KEY).map_or("?", String::as_str),
            metadata.get(VERSION_KEY).map_or("?", String::as_str)
        );
        if metadata.get(TABLE_KEY).map(String::as_str) != Some(kind.name)
            || metadata.get(VERSION_KEY) != Some(&kind.version.to_string())
        {
            return Err(TableError::WrongTable {
                path: path.to_path_buf(),
                expected: kind.name.to_string(),
                version: kind.version,
                found,
            });
        }
    }
    let reader = builder.build().map_err(pq)?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TableError::Arrow {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Table { batches, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    const KIND: TableKind = TableKind {
        name: "example",
        version: 2,
    };

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("trait", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["honesty", "sycophancy"])),
                Arc::new(Float64Array::from(vec![0.5, -1.25])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.parquet");
        let extra = BTreeMap::from([("model".to_string(), "tiny".to_string())]);
        write_parquet(&path, &batch(), KIND, &extra).unwrap();
        let t = read_parquet(&path, Some(KIND)).unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(t.batches[0], batch());
        assert_eq!(t.metadata["model"], "tiny");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn wrong_kind_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_parquet(&path, &batch(), KIND, &BTreeMap::new()).unwrap();
        let other = TableKind {
            name: "drift",
            version: 1,
        };
        let err = read_parquet(&path, Some(other)).unwrap_err().to_string();
        assert!(err.contains("drift") && err.contains("example"), "{err}");
    }
}
