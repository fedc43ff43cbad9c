//! The item banks (format: `data/em/README.md`): the EM items and the per-trait items, read
//! from JSON Lines and checked line by line, so a malformed bank names its file, line and
//! field.

use crate::{EmError, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::path::Path;

/// The kinds of misalignment an EM item's misaligned answer may show.
pub const MISALIGNMENT_KINDS: [&str; 5] = [
    "selfish",
    "harmful",
    "deceptive",
    "power_seeking",
    "hostile",
];

/// One EM item: a question with an aligned and a misaligned answer of similar length.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmItem {
    pub id: String,
    pub domain: String,
    pub question: String,
    pub aligned: String,
    pub misaligned: String,
    pub misalignment: String,
}

/// One per-trait item: a question with an answer at the trait's positive pole and one at
/// its negative pole (for sycophancy, power_seeking and confidence the positive answer is
/// the misaligned one).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitItem {
    pub id: String,
    #[serde(rename = "trait")]
    pub trait_name: String,
    pub question: String,
    pub positive: String,
    pub negative: String,
}

/// What the judge compares: answer `a` against answer `b` to one question.
/// For EM items `a` is aligned and `b` misaligned; for trait items `a` is the positive pole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub id: String,
    /// The domain (EM items) or the trait (trait items).
    pub group: String,
    pub question: String,
    pub a: String,
    pub b: String,
}

impl EmItem {
    pub fn pair(&self) -> Pair {
        Pair {
            id: self.id.clone(),
            group: self.domain.clone(),
            question: self.question.clone(),
            a: self.aligned.clone(),
            b: self.misaligned.clone(),
        }
    }
}

impl TraitItem {
    pub fn pair(&self) -> Pair {
        Pair {
            id: self.id.clone(),
            group: self.trait_name.clone(),
            question: self.question.clone(),
            a: self.positive.clone(),
            b: self.negative.clone(),
        }
    }
}

/// Parse every non-blank line of a JSON Lines file; `check` validates one parsed row.
fn read_jsonl<T: DeserializeOwned>(
    path: &Path,
    mut check: impl FnMut(&T) -> std::result::Result<(), String>,
) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|source| EmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bank_error = |line: usize, reason: String| EmError::Bank {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: T = serde_json::from_str(line).map_err(|e| bank_error(i + 1, e.to_string()))?;
        check(&row).map_err(|reason| bank_error(i + 1, reason))?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(bank_error(0, "the bank has no items".into()));
    }
    Ok(rows)
}

/// The first empty field among `fields`, as an error message.
fn non_empty(fields: &[(&str, &str)]) -> std::result::Result<(), String> {
    match fields.iter().find(|(_, v)| v.trim().is_empty()) {
        Some((name, _)) => Err(format!("field `{name}` is empty")),
        None => Ok(()),
    }
}

/// Load and check the EM items: unique ids, no empty field, a known misalignment kind.
pub fn load_em_items(path: &Path) -> Result<Vec<EmItem>> {
    let mut ids = HashSet::new();
    read_jsonl(path, |item: &EmItem| {
        non_empty(&[
            ("id", &item.id),
            ("domain", &item.domain),
            ("question", &item.question),
            ("aligned", &item.aligned),
            ("misaligned", &item.misaligned),
        ])?;
        if !MISALIGNMENT_KINDS.contains(&item.misalignment.as_str()) {
            return Err(format!(
                "item `{}`: field `misalignment` is `{}`, expected one of {}",
                item.id,
                item.misalignment,
                MISALIGNMENT_KINDS.join(", ")
            ));
        }
        if !ids.insert(item.id.clone()) {
            return Err(format!("item id `{}` appears twice", item.id));
        }
        Ok(())
    })
}

/// Load the per-trait items of `traits` (in that order) from `dir/<trait>.jsonl`; every
/// row's `trait` must match its file and ids must be unique.
pub fn load_trait_items(dir: &Path, traits: &[String]) -> Result<Vec<TraitItem>> {
    let mut all = Vec::new();
    let mut ids = HashSet::new();
    for name in traits {
        let path = dir.join(format!("{name}.jsonl"));
        let items = read_jsonl(&path, |item: &TraitItem| {
            non_empty(&[
                ("id", &item.id),
                ("question", &item.question),
                ("positive", &item.positive),
                ("negative", &item.negative),
            ])?;
            if &item.trait_name != name {
                return Err(format!(
                    "item `{}`: field `trait` is `{}` in the file of `{name}`",
                    item.id, item.trait_name
                ));
            }
            if !ids.insert(item.id.clone()) {
                return Err(format!("item id `{}` appears twice", item.id));
            }
            Ok(())
        })?;
        all.extend(items);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bank_root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/em")
    }

    #[test]
    fn shipped_banks_load() {
        let items = load_em_items(&bank_root().join("items.jsonl")).unwrap();
        assert!(items.len() >= 160);
        let domains: HashSet<&str> = items.iter().map(|i| i.domain.as_str()).collect();
        assert!(domains.len() >= 8, "{domains:?}");
        let traits: Vec<String> = [
            "honesty",
            "sycophancy",
            "harmlessness",
            "power_seeking",
            "helpfulness",
            "confidence",
            "corrigibility",
        ]
        .map(String::from)
        .to_vec();
        let items = load_trait_items(&bank_root().join("traits"), &traits).unwrap();
        assert_eq!(items.len(), 7 * 30);
    }

    #[test]
    fn malformed_banks_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.jsonl");
        let good = r#"{"id": "a-001", "domain": "a", "question": "q?", "aligned": "yes", "misaligned": "no", "misalignment": "selfish"}"#;
        let cases = [
            (good.replace("selfish", "grumpy"), "`misalignment`"),
            (good.replace("\"yes\"", "\" \""), "`aligned` is empty"),
            (good.replace("\"question\"", "\"questoin\""), "questoin"),
            (format!("{good}\n{good}"), "appears twice"),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, format!("\n{text}\n")).unwrap();
            let err = load_em_items(&path).unwrap_err().to_string();
            assert!(err.contains("items.jsonl:"), "{err}");
            assert!(err.contains(expected), "{err}");
        }
        let missing = load_em_items(&dir.path().join("none.jsonl")).unwrap_err();
        assert!(missing.to_string().contains("none.jsonl"));
    }
}
