//! The SAE on data where the answer is known (sparse combinations of a few directions), and
//! token activations collected from a tiny model.

#![allow(clippy::unwrap_used)]

use baselines::{SaeConfig, token_activations, train_sae};
use burn::backend::{Autodiff, Flex};
use drift::FeatureMap;
use llm::Message;
use llm::testing::TinyModel;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

type B = Autodiff<Flex>;

#[test]
fn a_sparse_code_is_learned_and_reported() {
    // Four orthogonal directions in R^8; each token uses one of them at a random strength.
    let d = 8;
    let mut rng = StdRng::seed_from_u64(1);
    let mut data = Vec::new();
    for _ in 0..2000 {
        let k = rng.random_range(0..4usize);
        let a: f32 = rng.random_range(1.0..3.0);
        for j in 0..d {
            data.push(if j == 2 * k { a } else { 0.0 } + 0.01 * rng.random_range(-1.0f32..1.0));
        }
    }
    let cfg = SaeConfig {
        latents: 16,
        l1: 0.06,
        lr: 3e-3,
        steps: 800,
        batch_size: 128,
        seed: 3,
        top_k: None,
    };
    let (sae, log, report) = train_sae::<B>(&data, d, &cfg, &Default::default(), None).unwrap();
    assert!(report.fvu < 0.1, "{report:?}");
    assert!(report.mean_l0 < 6.0, "sparse: {report:?}");
    assert!(
        log.len() >= 10 && log.last().unwrap().loss < log[0].loss,
        "{log:?}"
    );
    assert_eq!((sae.d, sae.m), (8, 16));
    // As a feature map: the drift of a token along direction 0 shows in some latent.
    let z0 = sae.apply(&[0.0; 8]).unwrap();
    let z1 = sae
        .apply(&[2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        .unwrap();
    assert!(z0.iter().zip(&z1).any(|(a, b)| (a - b).abs() > 0.1));
    // Reproducible from the seed.
    let (again, _, _) = train_sae::<B>(&data, d, &cfg, &Default::default(), None).unwrap();
    assert_eq!(again.w_enc, sae.w_enc);
    assert!(train_sae::<B>(&data[..d], d, &cfg, &Default::default(), None).is_err());

    // Top-k: one latent per token at most, and still a good reconstruction of this data.
    let top1 = SaeConfig {
        top_k: Some(1),
        ..cfg.clone()
    };
    let (sae, _, report) = train_sae::<B>(&data, d, &top1, &Default::default(), None).unwrap();
    assert!(
        report.mean_l0 <= 1.0 + 1e-9 && report.fvu < 0.2,
        "{report:?}"
    );
    assert_eq!(sae.top_k, Some(1));
    // Attention-sink-like rows, 100x the typical norm, are set aside and counted.
    let mut with_sinks = data.clone();
    for _ in 0..5 {
        with_sinks.extend([200.0f32; 8]);
    }
    let (_, _, report) = train_sae::<B>(&with_sinks, d, &cfg, &Default::default(), None).unwrap();
    assert_eq!((report.excluded_tokens, report.tokens), (5, 2000));
    assert!(report.fvu < 0.1, "{report:?}");
    let bad = SaeConfig {
        top_k: Some(16),
        ..cfg
    };
    assert!(train_sae::<B>(&data, d, &bad, &Default::default(), None).is_err());
}

#[test]
fn token_activations_cover_every_prompt_token() {
    let dir = tempfile::tempdir().unwrap();
    TinyModel::llama(5).save_hf_dir(dir.path(), 1).unwrap();
    let lm = llm::load::<Flex>(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    let conversations = vec![
        vec![Message::user("hello")],
        vec![
            Message::system("be kind"),
            Message::user("hello there friend"),
        ],
    ];
    let chat = lm.chat_template().unwrap();
    let expected: usize = conversations
        .iter()
        .map(|c| {
            chat.render_tokens(&lm.tokenizer, c, true)
                .unwrap()
                .ids
                .len()
        })
        .sum();
    let (acts, d) = token_activations(&lm, &conversations, 1, 1, None).unwrap();
    let (batched, _) = token_activations(&lm, &conversations, 1, 2, None).unwrap();
    assert_eq!(acts.len(), expected * d);
    // Left padding in a batch of two leaves every real token's activation as it was.
    for (a, b) in acts.iter().zip(&batched) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    assert!(token_activations(&lm, &conversations, 9, 1, None).is_err());
}
