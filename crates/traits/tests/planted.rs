//! Planted signal on a tiny random model: a direction added to the residual stream under
//! "positive" system prompts is recovered by extraction at the layer it was planted in, and
//! the steering search picks that layer.

#![allow(clippy::unwrap_used)]

use burn::backend::Flex;
use llm::testing::TinyModel;
use llm::weights::HostTensor;
use traits::bank::TraitBank;
use traits::collect::{CollectOptions, Pooling, RowSteering, collect};
use traits::directions::{Directions, DirectionsMeta, cosine};
use traits::extract::{difference_of_means, extraction_samples};
use traits::layer::{SteeringConfig, select_layer};

type B = Flex;

const LAYERS: usize = 4;
const PLANTED: usize = 1;

const BANK: &str = r#"
name = "planted"
version = 1
[[traits]]
name = "signal"
positive_pole = "on"
negative_pole = "off"
description = "The planted direction."
positive = ["You are green.", "Speak softly.", "Answer in verse."]
negative = ["You are blue.", "Speak loudly.", "Answer in prose."]
"#;

/// Blocks after `PLANTED` pass the residual stream through unchanged (zero output
/// projections), so the planted vector reaches the head as it was added.
fn tiny_model(dir: &std::path::Path) -> llm::LoadedModel<B> {
    let mut config = TinyModel::llama(3).config;
    config.num_hidden_layers = LAYERS;
    let mut tiny = TinyModel::random(config, 3);
    for l in PLANTED + 1..LAYERS {
        for name in ["self_attn.o_proj", "mlp.down_proj"] {
            let key = format!("model.layers.{l}.{name}.weight");
            let shape = tiny.weights[&key].shape.clone();
            let zeros = vec![0.0; shape.iter().product()];
            tiny.weights.insert(key, HostTensor::f32(shape, zeros));
        }
    }
    tiny.save_hf_dir(dir, 1).unwrap();
    llm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap()
}

#[test]
fn extraction_recovers_a_planted_direction_and_the_search_finds_its_layer() {
    let dir = tempfile::tempdir().unwrap();
    let lm = tiny_model(dir.path());
    let d = lm.model.d_model();
    let bank = TraitBank::from_toml_str(BANK, std::path::Path::new("planted.toml")).unwrap();
    let questions: Vec<String> = [
        "What is up?",
        "Tell me a story.",
        "Why is the sky blue?",
        "Name a tree.",
    ]
    .map(String::from)
    .to_vec();
    let (samples, conversations) = extraction_samples(&bank, &questions);

    // The planted direction, large against the tiny model's residual norms (about 1).
    let planted: Vec<f32> = (0..d)
        .map(|i| if i % 3 == 0 { 20.0 } else { -10.0 })
        .collect();
    let vectors = samples
        .iter()
        .map(|s| {
            if s.positive {
                planted.clone()
            } else {
                vec![0.0; d]
            }
        })
        .collect();
    let opts = CollectOptions {
        layers: (0..LAYERS).collect(),
        pooling: Pooling::LastPromptToken,
        batch_size: 5,
        steering: Some(RowSteering {
            layer: PLANTED,
            vectors,
        }),
    };
    let pooled = collect(&lm, &conversations, &opts, None).unwrap();
    let (unit, residual_norm) = difference_of_means(&pooled, &samples, 1).unwrap();
    let directions = Directions {
        traits: bank.trait_names(),
        n_layers: LAYERS,
        d_model: d,
        vectors: unit,
        residual_norm,
        meta: DirectionsMeta {
            bank: bank.name.clone(),
            bank_version: 1,
            bank_hash: String::new(),
            pooling: "last".into(),
            layer_convention: String::new(),
            model: "tiny".into(),
            model_fingerprint: String::new(),
            samples_per_pole: 12,
        },
    };
    let recovered = cosine(directions.at(0, PLANTED), &planted);
    assert!(recovered > 0.99, "cosine at the planted layer {recovered}");
    let before = cosine(directions.at(0, PLANTED - 1), &planted);
    assert!(
        before.abs() < 0.9,
        "no signal before it was planted ({before})"
    );

    // Save and load: the file keeps everything.
    let path = dir.path().join("directions.safetensors");
    directions.save(&path).unwrap();
    assert_eq!(Directions::load(&path).unwrap(), directions);

    // Steering strength is a fraction of each layer's residual norm, which the planted
    // vector dominates from its layer on; the blocks after it are identities, so every
    // later layer ties with it and the tie goes to the shallowest.
    let cfg = SteeringConfig {
        candidate_layers: (0..LAYERS).collect(),
        alpha_fraction: 0.5,
        max_new_tokens: 12,
        prompts: vec!["Hello there.".into(), "What is a cat?".into()],
    };
    let choice = select_layer(&lm, &directions, &cfg, None).unwrap();
    let scores: Vec<f64> = choice.scores.iter().map(|s| s.1).collect();
    assert_eq!(choice.best_layer, PLANTED, "scores {scores:?}");
    assert!(scores[PLANTED] > scores[0], "scores {scores:?}");
    // Rows: per layer, the unsteered prompts plus trait x sign x prompt.
    assert_eq!(choice.rows.len(), LAYERS * (2 + 2 * 2));
    assert!(
        choice
            .rows
            .iter()
            .filter(|r| r.sign == 0)
            .all(|r| r.divergence == 0.0)
    );
}

#[test]
fn a_corrupt_directions_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directions.safetensors");
    std::fs::write(&path, b"not a tensor file").unwrap();
    let err = Directions::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("directions.safetensors") && err.contains("safetensors"),
        "{err}"
    );
}
