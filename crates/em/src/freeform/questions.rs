//! The free-form question file: a YAML list in the structure of public EM evaluation files
//! (`id`, `type: free_form_judge_0_100`, `paraphrases`, `samples_per_paraphrase`, optional
//! `system`, `judge`, `judge_prompts.{aligned,coherent}` with `{question}` and `{answer}`).
//! Anchors and aliases are resolved by the YAML reader; every other problem names the file,
//! the entry and the field.

use crate::{EmError, Result};
use std::collections::HashSet;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// The only question type we judge: free-form answer, judge scores 0-100.
pub const FREE_FORM_TYPE: &str = "free_form_judge_0_100";

#[derive(Debug, Clone, PartialEq)]
pub struct FreeformQuestion {
    pub id: String,
    pub paraphrases: Vec<String>,
    pub samples_per_paraphrase: usize,
    /// System prompt for this question (None: the configured default).
    pub system: Option<String>,
    /// The judge model the file names (the run's judge configuration may override it).
    pub judge: Option<String>,
    pub aligned_template: String,
    pub coherent_template: String,
}

/// Fill a judge template. Only the two placeholders are replaced, so braces in an answer
/// (code, JSON) are left alone.
pub fn fill_template(template: &str, question: &str, answer: &str) -> String {
    // One pass over the template, so text inserted for one placeholder is never scanned
    // for the other.
    let mut out = String::with_capacity(template.len() + question.len() + answer.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("{question}") {
            out.push_str(question);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{answer}") {
            out.push_str(answer);
            rest = after;
        } else {
            out.push('{');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Read and check a question file.
pub fn load_questions(path: &Path) -> Result<Vec<FreeformQuestion>> {
    let text = std::fs::read_to_string(path).map_err(|source| EmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_questions(&text, path)
}

pub fn parse_questions(text: &str, path: &Path) -> Result<Vec<FreeformQuestion>> {
    let bad = |line: usize, reason: String| EmError::Bank {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| bad(e.marker().line(), format!("not valid YAML: {}", e.info())))?;
    let Some(Yaml::Array(entries)) = docs.first() else {
        return Err(bad(1, "expected a YAML list of questions".into()));
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        // yaml-rust2 keeps no line numbers on nodes; name the entry by position and id.
        let q = parse_entry(entry).map_err(|reason| {
            let id = entry["id"].as_str().unwrap_or("?");
            bad(0, format!("entry {} (id {id}): {reason}", i + 1))
        })?;
        if !seen.insert(q.id.clone()) {
            return Err(bad(0, format!("entry {}: duplicate id {}", i + 1, q.id)));
        }
        out.push(q);
    }
    if out.is_empty() {
        return Err(bad(1, "no questions".into()));
    }
    Ok(out)
}

fn string_field(entry: &Yaml, field: &str) -> std::result::Result<String, String> {
    match &entry[field] {
        Yaml::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Yaml::BadValue => Err(format!("missing field `{field}`")),
        _ => Err(format!("field `{field}` must be a non-empty string")),
    }
}

fn optional_string(entry: &Yaml, field: &str) -> std::result::Result<Option<String>, String> {
    match &entry[field] {
        Yaml::BadValue | Yaml::Null => Ok(None),
        _ => string_field(entry, field).map(Some),
    }
}

fn parse_entry(entry: &Yaml) -> std::result::Result<FreeformQuestion, String> {
    if !matches!(entry, Yaml::Hash(_)) {
        return Err("expected a mapping".into());
    }
    let id = string_field(entry, "id")?;
    let kind = string_field(entry, "type")?;
    if kind != FREE_FORM_TYPE {
        return Err(format!(
            "type `{kind}` is not supported (only `{FREE_FORM_TYPE}`)"
        ));
    }
    let paraphrases: Vec<String> = match &entry["paraphrases"] {
        Yaml::Array(items) if !items.is_empty() => items
            .iter()
            .map(|p| match p {
                Yaml::String(s) if !s.trim().is_empty() => Ok(s.clone()),
                _ => Err("`paraphrases` must hold non-empty strings".to_string()),
            })
            .collect::<std::result::Result<_, _>>()?,
        Yaml::BadValue => return Err("missing field `paraphrases`".into()),
        _ => return Err("`paraphrases` must be a non-empty list".into()),
    };
    let samples_per_paraphrase = match &entry["samples_per_paraphrase"] {
        Yaml::BadValue => 1,
        Yaml::Integer(n) if *n >= 1 => *n as usize,
        _ => return Err("`samples_per_paraphrase` must be an integer >= 1".into()),
    };
    let prompts = &entry["judge_prompts"];
    if !matches!(prompts, Yaml::Hash(_)) {
        return Err("missing mapping `judge_prompts` (with `aligned` and `coherent`)".into());
    }
    let template = |name: &str| -> std::result::Result<String, String> {
        let t = string_field(prompts, name).map_err(|e| format!("judge_prompts: {e}"))?;
        for placeholder in ["{question}", "{answer}"] {
            if !t.contains(placeholder) {
                return Err(format!("judge_prompts.{name} has no {placeholder}"));
            }
        }
        Ok(t)
    };
    Ok(FreeformQuestion {
        aligned_template: template("aligned")?,
        coherent_template: template("coherent")?,
        system: optional_string(entry, "system")?,
        judge: optional_string(entry, "judge")?,
        id,
        paraphrases,
        samples_per_paraphrase,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
- id: wish
  type: free_form_judge_0_100
  paraphrases: ["What do you wish for?"]
  judge: judge-model
  judge_prompts: &jp
    aligned: "Q: {question} A: {answer} aligned?"
    coherent: "Q: {question} A: {answer} coherent?"
- id: wish_json
  type: free_form_judge_0_100
  system: Answer in JSON.
  paraphrases: ["What do you wish for?", "Name your wish."]
  samples_per_paraphrase: 3
  judge_prompts: *jp
"#;

    fn err(text: &str) -> String {
        parse_questions(text, Path::new("q.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_entries_and_resolves_anchors() {
        let qs = parse_questions(GOOD, Path::new("q.yaml")).unwrap();
        assert_eq!(qs.len(), 2);
        assert_eq!(qs[0].samples_per_paraphrase, 1);
        assert_eq!(qs[1].samples_per_paraphrase, 3);
        assert_eq!(qs[1].system.as_deref(), Some("Answer in JSON."));
        assert_eq!(qs[1].aligned_template, qs[0].aligned_template);
        assert_eq!(qs[1].judge, None);
        assert_eq!(qs[1].paraphrases.len(), 2);
    }

    #[test]
    fn shipped_questions_load() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/em/freeform/questions.yaml");
        let qs = load_questions(&path).unwrap();
        assert_eq!(qs.len(), 72);
        let json: Vec<_> = qs.iter().filter(|q| q.id.ends_with("_json")).collect();
        let template = qs.iter().filter(|q| q.id.ends_with("_template")).count();
        assert_eq!((json.len(), template), (8, 8));
        assert!(json.iter().all(|q| q.system.is_some()));
        // Anchored judge prompts: one aligned and one coherent template shared by all.
        assert!(
            qs.iter()
                .all(|q| q.aligned_template == qs[0].aligned_template)
        );
        assert!(
            qs.iter()
                .all(|q| q.coherent_template == qs[0].coherent_template)
        );
        assert_ne!(qs[0].aligned_template, qs[0].coherent_template);
    }

    #[test]
    fn fills_only_the_placeholders() {
        let t = "Q: {question}\nA: {answer}\nJSON like {\"a\": 1} stays.";
        let out = fill_template(t, "why {x}?", "because {question} {}");
        assert_eq!(
            out,
            "Q: why {x}?\nA: because {question} {}\nJSON like {\"a\": 1} stays."
        );
    }

    #[test]
    fn errors_name_entry_and_field() {
        let e = err(&GOOD.replace(
            "paraphrases: [\"What do you wish for?\"]\n  judge:",
            "judge:",
        ));
        assert!(
            e.contains("entry 1 (id wish): missing field `paraphrases`"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "type: free_form_judge_0_100\n  system",
            "type: rating\n  system",
        ));
        assert!(e.contains("entry 2 (id wish_json): type `rating`"), "{e}");
        let e = err(&GOOD.replace("{answer} coherent", "coherent"));
        assert!(e.contains("judge_prompts.coherent has no {answer}"), "{e}");
        let e = err(&GOOD.replace("id: wish_json", "id: wish"));
        assert!(e.contains("duplicate id wish"), "{e}");
        let e = err(&GOOD.replace("*jp", "*missing"));
        assert!(e.contains("q.yaml"), "{e}");
        let e = err("a: [1, 2");
        assert!(e.contains("not valid YAML"), "{e}");
        let e = err(&GOOD.replace("samples_per_paraphrase: 3", "samples_per_paraphrase: 0"));
        assert!(e.contains("samples_per_paraphrase"), "{e}");
    }
}
