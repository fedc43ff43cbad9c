//! Bad input gets a typed error that names the problem, never a panic.
#![allow(clippy::unwrap_used)]

use burn::backend::Flex;
use llm::gguf::{GgmlType, GgufError, GgufFile, MetadataValue};
use llm::loader::{ModelLocation, load_location};
use llm::testing::TinyModel;
use llm::weights::GgufWeights;
use llm::{
    Batch, ForwardOptions, Llama, LlmError, LogitsMode, ModelConfig, PaddingSide, SamplingConfig,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

type B = Flex;

fn tiny_gguf_bytes() -> Vec<u8> {
    TinyModel::llama(1).to_gguf(GgmlType::F32).to_bytes()
}

fn open(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes("model.gguf", bytes)
}

fn load_gguf(bytes: Vec<u8>) -> Result<Llama<B>, LlmError> {
    let file = open(bytes)?;
    let cfg = ModelConfig::from_gguf(&file)?;
    Llama::load(&cfg, &GgufWeights::new(file)?, None, &Default::default())
}

#[test]
fn truncated_gguf_is_an_error_at_every_length() {
    let full = tiny_gguf_bytes();
    let data_start = full.len() - TinyModel::llama(1).config.n_params() * 4;
    let cuts = (0..data_start.min(4096)).chain((data_start..full.len()).step_by(997));
    for cut in cuts {
        match open(full[..cut].to_vec()) {
            Err(GgufError::Truncated { path, .. }) | Err(GgufError::Corrupt { path, .. }) => {
                assert_eq!(path.to_str(), Some("model.gguf"));
            }
            Err(GgufError::BadMagic { .. }) if cut < 4 => {}
            other => panic!("cut at {cut}: expected a truncation error, got {other:?}"),
        }
    }
    let err = open(full[..full.len() - 1].to_vec())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated") && err.contains("model.gguf"),
        "{err}"
    );
}

#[test]
fn random_corruption_never_panics() {
    let full = tiny_gguf_bytes();
    let mut rng = StdRng::seed_from_u64(0);
    for _ in 0..300 {
        let mut bytes = full.clone();
        for _ in 0..rng.random_range(1..8usize) {
            let at = rng.random_range(0..4096usize.min(bytes.len()));
            bytes[at] = rng.random::<u8>();
        }
        // Whatever the corruption, the result is a value (Ok or a typed error).
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(file) = open(bytes) {
                for t in file.tensors.clone() {
                    let _ = file.tensor_f32(&t.name);
                }
                let _ = ModelConfig::from_gguf(&file);
                let _ = llm::Tokenizer::from_gguf(&file);
            }
        });
        assert!(outcome.is_ok(), "corrupt GGUF caused a panic");
    }
}

#[test]
fn header_errors_are_named() {
    let mut bytes = tiny_gguf_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    assert!(matches!(open(bytes), Err(GgufError::BadMagic { .. })));
    let mut bytes = tiny_gguf_bytes();
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    let err = open(bytes).unwrap_err().to_string();
    assert!(err.contains("version 1"), "{err}");
}

#[test]
fn unknown_quantization_type_is_named() {
    let mut bytes = tiny_gguf_bytes();
    // Patch the type id of the first tensor entry (name, n_dims, dims, type).
    let name = b"blk.0.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let type_at = at + 4 + 2 * 8;
    bytes[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = open(bytes).unwrap_err();
    assert!(
        matches!(&err, GgufError::UnknownType { id: 99, tensor, .. } if tensor == "blk.0.attn_q.weight"),
        "{err}"
    );
}

#[test]
fn undequantizable_type_is_named() {
    let mut w = TinyModel::llama(1).to_gguf(GgmlType::F32);
    // The IQ formats need lookup grids this reader does not carry.
    w.add_raw("extra.weight", &[256], GgmlType::IQ4_XS, vec![0u8; 136])
        .unwrap();
    let file = open(w.to_bytes()).unwrap();
    let err = file.tensor_f32("extra.weight").unwrap_err().to_string();
    assert!(
        err.contains("extra.weight") && err.contains("IQ4_XS") && err.contains("Q2_K"),
        "the error names the tensor, its type and the supported types: {err}"
    );
}

#[test]
fn missing_tensor_and_wrong_shape_are_named() {
    let mut tiny = TinyModel::llama(1);
    tiny.weights.remove("model.layers.1.mlp.up_proj.weight");
    let err = load_gguf(tiny.to_gguf(GgmlType::F32).to_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("missing"),
        "{err}"
    );

    let mut tiny = TinyModel::llama(1);
    let t = tiny
        .weights
        .get_mut("model.layers.0.mlp.down_proj.weight")
        .unwrap();
    t.shape.reverse();
    let dir = tempfile::tempdir().unwrap();
    tiny.save_hf_dir(dir.path(), 1).unwrap();
    let err = load_location::<B>(ModelLocation::HfDir(dir.path().into()), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.layers.0.mlp.down_proj.weight") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn missing_config_key_is_named() {
    let mut w = llm::gguf::write::GgufWriter::new();
    w.metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    w.metadata("llama.embedding_length", MetadataValue::U32(32));
    let err = load_gguf(w.to_bytes()).unwrap_err().to_string();
    assert!(
        err.contains("llama.attention.head_count") || err.contains("llama.feed_forward_length"),
        "{err}"
    );
    assert!(err.contains("model.gguf"), "{err}");
}

#[test]
fn corrupt_safetensors_and_non_models_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    TinyModel::llama(1).save_hf_dir(dir.path(), 1).unwrap();
    let st = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..100]).unwrap();
    let err = load_location::<B>(ModelLocation::HfDir(dir.path().into()), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = llm::resolve(empty.path().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    let err = llm::resolve("no-such-model").unwrap_err().to_string();
    assert!(
        err.contains("smollm2-135m"),
        "the error lists the presets: {err}"
    );
}

#[test]
fn prompts_longer_than_the_context_are_rejected() {
    let tiny = TinyModel::llama(1);
    let model = Llama::<B>::load(&tiny.config, &tiny, None, &Default::default()).unwrap();
    let max = tiny.config.max_position_embeddings;
    let batch = Batch::new(vec![vec![5; max + 1]], 0, PaddingSide::Left).unwrap();
    let err = model
        .forward(&batch, &ForwardOptions::logits(LogitsMode::Last))
        .unwrap_err();
    assert!(matches!(err, LlmError::PromptTooLong { len, max: m } if len == max + 1 && m == max));
    let err = llm::generate(
        &model,
        &[vec![5; max - 2]],
        0,
        &SamplingConfig::greedy(10, vec![]),
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, LlmError::PromptTooLong { .. }), "{err}");
    let bad_id = Batch::new(vec![vec![9999]], 0, PaddingSide::Left).unwrap();
    let err = model
        .forward(&bad_id, &ForwardOptions::logits(LogitsMode::Last))
        .unwrap_err()
        .to_string();
    assert!(err.contains("9999"), "{err}");
}
