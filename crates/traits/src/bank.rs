//! Trait banks, extraction questions and measurement prompts: loading and validation.
//!
//! File formats are documented in `data/traits/README.md`. Every problem is reported with
//! the file, and for banks the trait and the field, so a researcher editing a bank by hand
//! can fix it without reading code.

use crate::error::{Result, TraitsError};
use sha2::{Digest, Sha256};
use std::path::Path;

/// One trait: two poles, each elicited by several system prompts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TraitSpec {
    /// snake_case, unique within its bank; names the drift feature.
    pub name: String,
    /// Label of the pole the direction points towards.
    pub positive_pole: String,
    pub negative_pole: String,
    pub description: String,
    /// System prompts eliciting the positive pole.
    pub positive: Vec<String>,
    /// System prompts eliciting the negative pole (same count as `positive`).
    pub negative: Vec<String>,
}

/// A named, ordered set of traits. File order is feature order everywhere downstream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TraitBank {
    pub name: String,
    pub version: u32,
    pub traits: Vec<TraitSpec>,
}

impl TraitBank {
    /// Load and validate a bank file.
    pub fn load(path: &Path) -> Result<Self> {
        let table = read_toml(path)?;
        Self::from_table(&table, path)
    }

    /// Parse and validate a bank from TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let table = parse_toml(text, origin)?;
        Self::from_table(&table, origin)
    }

    fn from_table(table: &toml::Table, file: &Path) -> Result<Self> {
        let top = |problem: String| TraitsError::File {
            file: file.to_path_buf(),
            problem,
        };
        reject_unknown(table, &["name", "version", "traits"], "the bank").map_err(top)?;
        let name = table
            .get("name")
            .and_then(toml::Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| top("missing or empty string `name`".into()))?
            .to_string();
        let version = table
            .get("version")
            .and_then(toml::Value::as_integer)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| top("missing `version` (a non-negative integer)".into()))?;
        let entries = table
            .get("traits")
            .and_then(toml::Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| top("no `[[traits]]` tables".into()))?;
        let mut traits: Vec<TraitSpec> = Vec::with_capacity(entries.len());
        for (k, entry) in entries.iter().enumerate() {
            let spec = parse_trait(entry, k, file)?;
            if traits.iter().any(|t| t.name == spec.name) {
                return Err(field_err(file, &spec.name, "name", "duplicate trait name"));
            }
            traits.push(spec);
        }
        Ok(Self {
            name,
            version,
            traits,
        })
    }

    /// Trait names in feature order.
    pub fn trait_names(&self) -> Vec<String> {
        self.traits.iter().map(|t| t.name.clone()).collect()
    }
}

fn field_err(file: &Path, trait_name: &str, field: &str, problem: &str) -> TraitsError {
    TraitsError::BankField {
        file: file.to_path_buf(),
        trait_name: trait_name.to_string(),
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

fn parse_trait(entry: &toml::Value, k: usize, file: &Path) -> Result<TraitSpec> {
    let placeholder = format!("#{}", k + 1);
    let t = entry
        .as_table()
        .ok_or_else(|| field_err(file, &placeholder, "traits", "expected a table"))?;
    let name = match t.get("name").and_then(toml::Value::as_str) {
        Some(n) if is_snake_case(n) => n.to_string(),
        Some(_) => {
            return Err(field_err(
                file,
                &placeholder,
                "name",
                "must be snake_case (a-z, 0-9, _)",
            ));
        }
        None => return Err(field_err(file, &placeholder, "name", "missing string")),
    };
    let known = [
        "name",
        "positive_pole",
        "negative_pole",
        "description",
        "positive",
        "negative",
    ];
    reject_unknown(t, &known, "this trait").map_err(|p| field_err(file, &name, "?", &p))?;
    let string = |field: &str| -> Result<String> {
        match t.get(field).and_then(toml::Value::as_str) {
            Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
            Some(_) => Err(field_err(file, &name, field, "empty string")),
            None => Err(field_err(file, &name, field, "missing string")),
        }
    };
    let list = |field: &str| -> Result<Vec<String>> {
        let arr = t
            .get(field)
            .and_then(toml::Value::as_array)
            .ok_or_else(|| field_err(file, &name, field, "missing list of strings"))?;
        if arr.is_empty() {
            return Err(field_err(file, &name, field, "empty list"));
        }
        arr.iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
                _ => Err(field_err(
                    file,
                    &name,
                    field,
                    &format!("entry {} is not a non-empty string", i + 1),
                )),
            })
            .collect()
    };
    let spec = TraitSpec {
        positive_pole: string("positive_pole")?,
        negative_pole: string("negative_pole")?,
        description: string("description")?,
        positive: list("positive")?,
        negative: list("negative")?,
        name: name.clone(),
    };
    if spec.positive.len() != spec.negative.len() {
        return Err(field_err(
            file,
            &name,
            "negative",
            &format!(
                "{} negative prompts but {} positive: the poles need equal counts",
                spec.negative.len(),
                spec.positive.len()
            ),
        ));
    }
    Ok(spec)
}

fn is_snake_case(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn reject_unknown(t: &toml::Table, known: &[&str], what: &str) -> Result<(), String> {
    match t.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown key `{k}` in {what} (expected one of: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| TraitsError::File {
        file: path.to_path_buf(),
        problem: format!("cannot read: {e}"),
    })?;
    parse_toml(&text, path)
}

fn parse_toml(text: &str, path: &Path) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| TraitsError::File {
        file: path.to_path_buf(),
        problem: format!("invalid TOML: {e}"),
    })
}

fn string_list(table: &toml::Table, key: &str, file: &Path) -> Result<Vec<String>> {
    let bad = |problem: String| TraitsError::File {
        file: file.to_path_buf(),
        problem,
    };
    let arr = table
        .get(key)
        .and_then(toml::Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad(format!("missing or empty list `{key}`")))?;
    arr.iter()
        .enumerate()
        .map(|(i, v)| match v.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
            _ => Err(bad(format!(
                "`{key}` entry {} is not a non-empty string",
                i + 1
            ))),
        })
        .collect()
}

/// Questions asked under every system prompt of a bank (`questions = [...]`).
pub fn load_questions(path: &Path) -> Result<Vec<String>> {
    let table = read_toml(path)?;
    reject_unknown(&table, &["questions"], "the question file").map_err(|problem| {
        TraitsError::File {
            file: path.to_path_buf(),
            problem,
        }
    })?;
    let questions = string_list(&table, "questions", path)?;
    check_unique(&questions, path)?;
    Ok(questions)
}

/// The canonical group order of the shipped measurement prompts; other groups follow
/// alphabetically.
pub const MEASUREMENT_GROUPS: [&str; 5] =
    ["technical", "ethical", "emotional", "casual", "adversarial"];

/// One measurement prompt with the group it belongs to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MeasurementPrompt {
    pub group: String,
    pub text: String,
}

/// Prompts asked with no system prompt at every checkpoint (`[groups] name = [...]`).
pub fn load_measurement_prompts(path: &Path) -> Result<Vec<MeasurementPrompt>> {
    let table = read_toml(path)?;
    let bad = |problem: String| TraitsError::File {
        file: path.to_path_buf(),
        problem,
    };
    reject_unknown(&table, &["groups"], "the measurement-prompt file").map_err(bad)?;
    let groups = table
        .get("groups")
        .and_then(toml::Value::as_table)
        .filter(|g| !g.is_empty())
        .ok_or_else(|| bad("missing `[groups]` table".into()))?;
    let mut names: Vec<&String> = groups.keys().collect();
    let rank = |n: &str| MEASUREMENT_GROUPS.iter().position(|g| *g == n);
    names.sort_by_key(|n| (rank(n).unwrap_or(usize::MAX), n.to_string()));
    let mut out = Vec::new();
    for name in names {
        let sub = toml::Table::from_iter([(name.clone(), groups[name].clone())]);
        for text in string_list(&sub, name, path)? {
            out.push(MeasurementPrompt {
                group: name.clone(),
                text,
            });
        }
    }
    let texts: Vec<String> = out.iter().map(|p| p.text.clone()).collect();
    check_unique(&texts, path)?;
    Ok(out)
}

fn check_unique(items: &[String], file: &Path) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    match items.iter().find(|s| !seen.insert(s.trim().to_lowercase())) {
        Some(dup) => Err(TraitsError::File {
            file: file.to_path_buf(),
            problem: format!("repeated entry: {dup:?}"),
        }),
        None => Ok(()),
    }
}

/// A short, stable hash of everything an extraction depends on in the banks: the bank and
/// the questions (hex sha256 of their canonical JSON).
pub fn content_hash(bank: &TraitBank, questions: &[String]) -> String {
    let json = serde_json::json!({ "bank": bank, "questions": questions });
    let digest = Sha256::digest(json.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
