//! GGUF files: header, metadata, tensor index and dequantized tensor data.
//!
//! The file is memory-mapped; every length, count and offset read from it is checked
//! against the file size before use, so a truncated or corrupt file yields a [`GgufError`]
//! naming the file and what was wrong, never a panic or a huge allocation.
//!
//! Shapes: GGUF lists dimensions fastest-first (`ne[0]` = columns). [`TensorInfo::shape`]
//! returns them row-major (slowest first), which for a linear layer is HF's `[out, in]`.

mod dequant;
mod dequant_k;
mod metadata;
mod names;
mod reader;
mod types;
pub mod write;

pub use dequant::dequantize_into;
pub use metadata::MetadataValue;
pub use names::GgufNaming;
pub use types::{DEQUANTIZABLE, GgmlType, QK_K};

use memmap2::Mmap;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Errors reading a GGUF file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read GGUF file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF file: it starts with {found:?}, expected \"GGUF\"")]
    BadMagic { path: PathBuf, found: [u8; 4] },
    #[error("{path}: GGUF version {version} is not supported (supported: 2 and 3)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error(
        "{path} is truncated: reading {what} at byte {offset} needs {needed} bytes, the file has {len}"
    )]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        len: u64,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: tensor `{tensor}` has unknown GGML type id {id}")]
    UnknownType {
        path: PathBuf,
        tensor: String,
        id: u32,
    },
    #[error(
        "{path}: tensor `{tensor}` is stored as {ty}, which cannot be dequantized (supported: {supported})"
    )]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        ty: GgmlType,
        supported: &'static str,
    },
    #[error("{path}: no tensor named `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: metadata key `{key}` is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key `{key}` is {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        found: &'static str,
        expected: &'static str,
    },
}

/// One tensor's entry in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as stored: fastest-varying first (`ne[0]`).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Row-major shape (slowest dimension first).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Size of the data in bytes (validated when the file was opened).
    pub fn byte_size(&self) -> u64 {
        self.ggml_type.byte_size(self.n_elements()).unwrap_or(0)
    }
}

enum Backing {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// An opened GGUF file.
pub struct GgufFile {
    path: PathBuf,
    backing: Backing,
    pub version: u32,
    pub metadata: BTreeMap<String, MetadataValue>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    data_start: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-map and parse the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Model files are not
        // expected to change while open; if one does, reads see the new bytes, which the
        // bounds checks below still keep in range.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::parse(path, Backing::Mapped(map))
    }

    /// Parse a GGUF image held in memory (`name` is used in error messages).
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::parse(name.into(), Backing::Owned(bytes))
    }

    fn parse(path: PathBuf, backing: Backing) -> Result<Self, GgufError> {
        let parsed = reader::parse(&path, backing.bytes())?;
        let index = parsed
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        tracing::debug!(
            path = %path.display(),
            version = parsed.version,
            tensors = parsed.tensors.len(),
            "opened GGUF"
        );
        Ok(Self {
            path,
            backing,
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            index,
            data_start: parsed.data_start,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor named `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw (still quantized) bytes of a tensor.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        // Ranges were validated against the file size at open.
        let start = (self.data_start + info.offset) as usize;
        let end = start + info.byte_size() as usize;
        Ok(&self.backing.bytes()[start..end])
    }

    /// Dequantize a tensor to f32, returning `(row-major shape, values)`.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), GgufError> {
        let bytes = self.tensor_bytes(name)?;
        let info = &self.tensors[self.index[name]];
        let mut values = Vec::new();
        if !dequantize_into(info.ggml_type, bytes, &mut values) {
            return Err(GgufError::UnsupportedType {
                path: self.path.clone(),
                tensor: name.to_string(),
                ty: info.ggml_type,
                supported: DEQUANTIZABLE,
            });
        }
        Ok((info.shape(), values))
    }

    /// A metadata value, or a `MissingKey` error.
    pub fn get(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    fn wrong_type(&self, key: &str, v: &MetadataValue, expected: &'static str) -> GgufError {
        GgufError::WrongType {
            path: self.path.clone(),
            key: key.to_string(),
            found: v.type_name(),
            expected,
        }
    }

    /// An unsigned integer value (any integer width, non-negative).
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.get(key)?;
        v.as_u64()
            .ok_or_else(|| self.wrong_type(key, v, "a non-negative integer"))
    }

    /// A float value (f32 or f64; integers are accepted too).
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.get(key)?;
        v.as_f64()
            .ok_or_else(|| self.wrong_type(key, v, "a number"))
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.get(key)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, v, "a string"))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.get(key)?;
        v.as_bool().ok_or_else(|| self.wrong_type(key, v, "a bool"))
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let v = self.get(key)?;
        v.as_str_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array of strings"))
    }

    /// An array of integers, as i64.
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        let v = self.get(key)?;
        v.as_i64_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array of integers"))
    }

    /// An array of numbers, as f64.
    pub fn get_f64_array(&self, key: &str) -> Result<Vec<f64>, GgufError> {
        let v = self.get(key)?;
        v.as_f64_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array of numbers"))
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }
}
