//! Where a manifest key was set: the file and line, for error messages.

use std::path::PathBuf;
use toml::de::{DeTable, DeValue};

/// A file and line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The texts a manifest was merged from, lowest priority first.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<(PathBuf, String)>,
}

impl Sources {
    pub fn push(&mut self, path: PathBuf, text: String) {
        self.files.push((path, text));
    }

    /// The line that set `key` (dotted, array entries by index: `models.0.source`), in
    /// the highest-priority file that sets it; else the deepest enclosing key found.
    pub fn locate(&self, key: &str) -> Option<Location> {
        let segments: Vec<&str> = key.split('.').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(usize, Location)> = None;
        for (file, text) in self.files.iter().rev() {
            let Ok(root) = DeTable::parse(text) else {
                continue;
            };
            let (depth, offset) = walk(root.get_ref(), &segments);
            let Some(offset) = offset else { continue };
            let location = Location {
                file: file.clone(),
                line: line_of(text, offset),
            };
            if depth == segments.len() {
                return Some(location);
            }
            if best.as_ref().is_none_or(|(d, _)| depth > *d) {
                best = Some((depth, location));
            }
        }
        best.map(|(_, l)| l)
    }
}

/// How many segments of `path` exist in `table`, and the byte offset of the deepest one.
fn walk(table: &DeTable<'_>, path: &[&str]) -> (usize, Option<usize>) {
    let Some((first, rest)) = path.split_first() else {
        return (0, None);
    };
    let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == first) else {
        return (0, None);
    };
    let here = key.span().start;
    let (depth, offset) = walk_value(value.get_ref(), rest);
    (1 + depth, offset.or(Some(here)))
}

fn walk_value(value: &DeValue<'_>, path: &[&str]) -> (usize, Option<usize>) {
    let Some((first, rest)) = path.split_first() else {
        return (0, None);
    };
    match value {
        DeValue::Table(t) => walk(t, path),
        DeValue::Array(items) => {
            let Some(item) = first.parse::<usize>().ok().and_then(|i| items.get(i)) else {
                return (0, None);
            };
            let (depth, offset) = walk_value(item.get_ref(), rest);
            (1 + depth, offset.or(Some(item.span().start)))
        }
        _ => (0, None),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A serde path (`models[0].name`, `finetune.set`) as our dotted form (`models.0.name`).
pub fn dotted(serde_path: &str) -> String {
    serde_path
        .replace('[', ".")
        .replace(']', "")
        .trim_start_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_tables_and_array_entries() {
        let mut s = Sources::default();
        s.push(
            "base.toml".into(),
            "[experiment]\nname = \"a\"\n\n[[models]]\nname = \"m\"\nsource = \"x\"\n".into(),
        );
        s.push(
            "top.toml".into(),
            "include = [\"base.toml\"]\n[experiment]\nname = \"b\"\n".into(),
        );
        let at = |k: &str| s.locate(k).map(|l| l.to_string());
        assert_eq!(at("experiment.name").as_deref(), Some("top.toml:3"));
        assert_eq!(at("models.0.source").as_deref(), Some("base.toml:6"));
        // An unknown key: the deepest enclosing key found.
        assert_eq!(at("models.0.nope").as_deref(), Some("base.toml:4"));
        assert_eq!(at("nothing"), None);
        assert_eq!(dotted("models[0].name"), "models.0.name");
    }
}
