//! GGUF metadata values.

use std::fmt;

/// One metadata value. Arrays keep their element values (a GGUF array is homogeneous).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetadataValue>),
}

impl MetadataValue {
    /// Type id as written in the file.
    pub fn type_id(&self) -> u32 {
        match self {
            MetadataValue::U8(_) => 0,
            MetadataValue::I8(_) => 1,
            MetadataValue::U16(_) => 2,
            MetadataValue::I16(_) => 3,
            MetadataValue::U32(_) => 4,
            MetadataValue::I32(_) => 5,
            MetadataValue::F32(_) => 6,
            MetadataValue::Bool(_) => 7,
            MetadataValue::String(_) => 8,
            MetadataValue::Array(_) => 9,
            MetadataValue::U64(_) => 10,
            MetadataValue::I64(_) => 11,
            MetadataValue::F64(_) => 12,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "u8",
            MetadataValue::I8(_) => "i8",
            MetadataValue::U16(_) => "u16",
            MetadataValue::I16(_) => "i16",
            MetadataValue::U32(_) => "u32",
            MetadataValue::I32(_) => "i32",
            MetadataValue::U64(_) => "u64",
            MetadataValue::I64(_) => "i64",
            MetadataValue::F32(_) => "f32",
            MetadataValue::F64(_) => "f64",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(_) => "array",
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            MetadataValue::U8(v) => v as i64,
            MetadataValue::I8(v) => v as i64,
            MetadataValue::U16(v) => v as i64,
            MetadataValue::I16(v) => v as i64,
            MetadataValue::U32(v) => v as i64,
            MetadataValue::I32(v) => v as i64,
            MetadataValue::U64(v) => i64::try_from(v).ok()?,
            MetadataValue::I64(v) => v,
            _ => return None,
        })
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U64(v) => Some(v),
            _ => self.as_i64().and_then(|v| u64::try_from(v).ok()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v as f64),
            MetadataValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_str_array(&self) -> Option<Vec<&str>> {
        match self {
            MetadataValue::Array(items) => items.iter().map(|v| v.as_str()).collect(),
            _ => None,
        }
    }

    pub fn as_i64_array(&self) -> Option<Vec<i64>> {
        match self {
            MetadataValue::Array(items) => items.iter().map(|v| v.as_i64()).collect(),
            _ => None,
        }
    }

    pub fn as_f64_array(&self) -> Option<Vec<f64>> {
        match self {
            MetadataValue::Array(items) => items.iter().map(|v| v.as_f64()).collect(),
            _ => None,
        }
    }
}

impl fmt::Display for MetadataValue {
    /// Short human-readable form: long strings and arrays are abbreviated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataValue::String(s) => {
                let one_line = s.replace('\n', "\\n");
                if one_line.chars().count() > 60 {
                    let head: String = one_line.chars().take(57).collect();
                    write!(f, "\"{head}...\" ({} chars)", s.chars().count())
                } else {
                    write!(f, "\"{one_line}\"")
                }
            }
            MetadataValue::Array(items) => {
                let kind = items.first().map_or("empty", |v| v.type_name());
                if items.len() <= 4 {
                    let shown: Vec<String> = items.iter().map(|v| v.to_string()).collect();
                    write!(f, "[{}]", shown.join(", "))
                } else {
                    write!(f, "[{} x {kind}]", items.len())
                }
            }
            MetadataValue::U8(v) => write!(f, "{v}"),
            MetadataValue::I8(v) => write!(f, "{v}"),
            MetadataValue::U16(v) => write!(f, "{v}"),
            MetadataValue::I16(v) => write!(f, "{v}"),
            MetadataValue::U32(v) => write!(f, "{v}"),
            MetadataValue::I32(v) => write!(f, "{v}"),
            MetadataValue::U64(v) => write!(f, "{v}"),
            MetadataValue::I64(v) => write!(f, "{v}"),
            MetadataValue::F32(v) => write!(f, "{v}"),
            MetadataValue::F64(v) => write!(f, "{v}"),
            MetadataValue::Bool(v) => write!(f, "{v}"),
        }
    }
}
