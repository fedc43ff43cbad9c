//! The shipped trait banks and prompt sets: counts, order, disjointness, and the errors a
//! malformed bank gets.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use traits::bank::{TraitBank, load_measurement_prompts, load_questions};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel)
}

const ALIGNMENT: [&str; 7] = [
    "honesty",
    "sycophancy",
    "harmlessness",
    "power_seeking",
    "helpfulness",
    "confidence",
    "corrigibility",
];
const SEMANTIC: [&str; 7] = [
    "verbosity",
    "formality",
    "technicality",
    "humor",
    "concreteness",
    "warmth",
    "creativity",
];

#[test]
fn shipped_banks_have_the_method_shape() {
    for (file, names) in [
        ("traits/alignment.toml", ALIGNMENT),
        ("traits/semantic.toml", SEMANTIC),
    ] {
        let bank = TraitBank::load(&data(file)).unwrap();
        assert_eq!(bank.trait_names(), names, "{file}: feature order");
        for t in &bank.traits {
            assert_eq!(
                (t.positive.len(), t.negative.len()),
                (5, 5),
                "{file}: {}",
                t.name
            );
        }
    }
    assert_eq!(
        load_questions(&data("traits/extraction_questions.toml"))
            .unwrap()
            .len(),
        30
    );
    let prompts = load_measurement_prompts(&data("traits/measurement_prompts.toml")).unwrap();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for p in &prompts {
        match counts.last_mut() {
            Some((g, n)) if *g == p.group => *n += 1,
            _ => counts.push((p.group.clone(), 1)),
        }
    }
    let expected = [
        ("technical", 25),
        ("ethical", 25),
        ("emotional", 25),
        ("casual", 25),
        ("adversarial", 15),
    ];
    let expected: Vec<(String, usize)> =
        expected.iter().map(|(g, n)| (g.to_string(), *n)).collect();
    assert_eq!(counts, expected);
}

/// Measurement prompts, extraction questions and EM evaluation questions are pairwise
/// disjoint (METHOD section 8: no judge question may double as a measurement prompt).
#[test]
fn prompt_sets_are_pairwise_disjoint() {
    let norm = |s: &str| s.trim().to_lowercase();
    let questions: HashSet<String> = load_questions(&data("traits/extraction_questions.toml"))
        .unwrap()
        .iter()
        .map(|s| norm(s))
        .collect();
    let measurement: HashSet<String> =
        load_measurement_prompts(&data("traits/measurement_prompts.toml"))
            .unwrap()
            .iter()
            .map(|p| norm(&p.text))
            .collect();
    let mut em: HashSet<String> = std::fs::read_to_string(data("em/items.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            norm(v["question"].as_str().unwrap())
        })
        .collect();
    // Free-form questions: every quoted paraphrase line of the YAML file.
    let yaml = std::fs::read_to_string(data("em/freeform/questions.yaml")).unwrap();
    em.extend(
        yaml.lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("- \""))
            .filter_map(|l| l.strip_suffix('"'))
            .map(norm),
    );
    assert!(em.len() > 100, "EM questions were read ({})", em.len());
    for (a, an, b, bn) in [
        (&questions, "extraction", &measurement, "measurement"),
        (&questions, "extraction", &em, "EM"),
        (&measurement, "measurement", &em, "EM"),
    ] {
        let shared: Vec<_> = a.intersection(b).collect();
        assert!(shared.is_empty(), "{an} and {bn} share {shared:?}");
    }
}

fn bank_error(text: &str) -> String {
    TraitBank::from_toml_str(text, Path::new("my_bank.toml"))
        .unwrap_err()
        .to_string()
}

const GOOD_TRAIT: &str = r#"
[[traits]]
name = "kindness"
positive_pole = "kind"
negative_pole = "unkind"
description = "Kind or not."
positive = ["Be kind."]
negative = ["Be unkind."]
"#;

#[test]
fn malformed_banks_name_the_file_trait_and_field() {
    let head = "name = \"mine\"\nversion = 1\n";
    assert!(TraitBank::from_toml_str(&format!("{head}{GOOD_TRAIT}"), Path::new("x")).is_ok());

    let err = bank_error(&format!(
        "{head}{}",
        GOOD_TRAIT.replace("positive = [\"Be kind.\"]", "")
    ));
    assert!(
        err.contains("my_bank.toml") && err.contains("kindness") && err.contains("`positive`"),
        "{err}"
    );

    let err = bank_error(&format!(
        "{head}{}",
        GOOD_TRAIT.replace("[\"Be unkind.\"]", "[\"a\", \"b\"]")
    ));
    assert!(err.contains("`negative`") && err.contains("equal"), "{err}");

    let err = bank_error(&format!(
        "{head}{}",
        GOOD_TRAIT.replace("description = \"Kind or not.\"", "description = 3")
    ));
    assert!(
        err.contains("kindness") && err.contains("`description`"),
        "{err}"
    );

    let err = bank_error(&format!("{head}{GOOD_TRAIT}{GOOD_TRAIT}"));
    assert!(err.contains("duplicate"), "{err}");

    let err = bank_error(&format!(
        "{head}{}",
        GOOD_TRAIT.replace("negative_pole", "negativ_pole")
    ));
    assert!(err.contains("negativ_pole"), "{err}");

    let err = bank_error("version = 1\n");
    assert!(
        err.contains("my_bank.toml") && err.contains("`name`"),
        "{err}"
    );

    let err = bank_error("name = \"x\"\nversion = [");
    assert!(err.contains("invalid TOML"), "{err}");

    let err = TraitBank::load(Path::new("/no/such/bank.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/bank.toml"), "{err}");
}
