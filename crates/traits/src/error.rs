//! Errors of the `traits` crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TraitsError {
    /// A bank or prompt file that cannot be read or parsed.
    #[error("{file}: {problem}")]
    File { file: PathBuf, problem: String },
    /// One field of one trait in a bank is missing or wrong.
    #[error("{file}: trait `{trait_name}`, field `{field}`: {problem}")]
    BankField {
        file: PathBuf,
        trait_name: String,
        field: String,
        problem: String,
    },
    /// A directions file that is missing, corrupt or inconsistent.
    #[error("{file}: {problem}")]
    Directions { file: PathBuf, problem: String },
    /// A setting or input that cannot be used (names the setting).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Llm(#[from] llm::LlmError),
    #[error(transparent)]
    Table(#[from] tables::TableError),
}

pub type Result<T, E = TraitsError> = std::result::Result<T, E>;
