//! The runtime on tiny random models written through the real loaders: file formats agree,
//! padding and caching change nothing, adapters and interventions do what they say.
#![allow(clippy::unwrap_used)]

use burn::backend::Flex;
use burn::module::Param;
use burn::tensor::{Distribution, Tensor};
use llm::gguf::{GgmlType, GgufFile};
use llm::loader::{ModelLocation, load_location};
use llm::model::{LoraAdapter, tensor_to_f32};
use llm::testing::TinyModel;
use llm::weights::GgufWeights;
use llm::{
    Batch, ForwardOptions, HookPoint, Llama, LogitsMode, Message, PaddingSide, SamplingConfig,
};

type B = Flex;

fn device() -> burn::tensor::Device<B> {
    Default::default()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn logits(model: &Llama<B>, rows: Vec<Vec<u32>>, side: PaddingSide) -> (Batch, Vec<f32>) {
    let batch = Batch::new(rows, 0, side).unwrap();
    let out = model
        .forward(&batch, &ForwardOptions::logits(LogitsMode::All))
        .unwrap();
    (batch, tensor_to_f32(out.logits.unwrap()))
}

fn tokens() -> Vec<Vec<u32>> {
    vec![
        vec![5, 9, 44, 100, 7, 3, 250],
        vec![17, 18],
        vec![200, 201, 202, 203],
    ]
}

#[test]
fn gguf_and_sharded_hf_dir_load_the_same_model() {
    for tiny in [
        TinyModel::llama_tied(1),
        TinyModel::llama(1),
        TinyModel::gemma2(1),
        TinyModel::gemma3(1),
    ] {
        check_formats_agree(&tiny);
    }
}

fn check_formats_agree(tiny: &TinyModel) {
    let dir = tempfile::tempdir().unwrap();
    let gguf_path = dir.path().join("tiny.gguf");
    tiny.to_gguf(GgmlType::F32).write(&gguf_path).unwrap();
    tiny.save_hf_dir(&dir.path().join("hf"), 3).unwrap();
    let direct = Llama::<B>::load(&tiny.config, tiny, None, &device()).unwrap();
    assert_eq!(direct.lm_head.is_none(), tiny.config.tie_word_embeddings);
    let from_gguf = load_location::<B>(ModelLocation::Gguf(gguf_path), &device()).unwrap();
    let from_hf =
        load_location::<B>(ModelLocation::HfDir(dir.path().join("hf")), &device()).unwrap();
    let (_, want) = logits(&direct, tokens(), PaddingSide::Left);
    // GGUF stores Q/K permuted; equal logits prove the loader undoes it.
    assert!(
        max_diff(
            &logits(&from_gguf.model, tokens(), PaddingSide::Left).1,
            &want
        ) < 1e-5
    );
    assert!(
        max_diff(
            &logits(&from_hf.model, tokens(), PaddingSide::Left).1,
            &want
        ) < 1e-5
    );
    // Both tokenizers and templates agree too.
    let msgs = [
        Message::system("Be brief."),
        Message::user("the weather in Paris"),
    ];
    let a = from_gguf
        .chat
        .as_ref()
        .unwrap()
        .render_tokens(&from_gguf.tokenizer, &msgs, true)
        .unwrap();
    let b = from_hf
        .chat
        .as_ref()
        .unwrap()
        .render_tokens(&from_hf.tokenizer, &msgs, true)
        .unwrap();
    assert_eq!(a.ids, b.ids);
    assert!(
        a.ids.contains(&1) && a.ids.contains(&2),
        "special tokens are single ids"
    );
    assert_eq!(from_hf.tokenizer.eos_ids, vec![2]);
}

#[test]
fn q8_0_weights_stay_close_to_f32() {
    let tiny = TinyModel::llama(2);
    let f32_model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let file =
        GgufFile::from_bytes("tiny-q8.gguf", tiny.to_gguf(GgmlType::Q8_0).to_bytes()).unwrap();
    let q8 = Llama::<B>::load(
        &tiny.config,
        &GgufWeights::new(file).unwrap(),
        None,
        &device(),
    )
    .unwrap();
    let exact = logits(&f32_model, tokens(), PaddingSide::Left).1;
    let scale = exact.iter().fold(0f32, |m, x| m.max(x.abs()));
    let d = max_diff(&logits(&q8, tokens(), PaddingSide::Left).1, &exact);
    // Q8_0 keeps 8 bits per weight: logits move, by about a percent of their range.
    assert!(
        d > 0.0 && d < 0.02 * scale,
        "Q8_0 logits differ by {d} (range {scale})"
    );
}

#[test]
fn padding_does_not_change_any_row() {
    // Gemma's windows (4) are shorter than the longest row (7).
    for tiny in [
        TinyModel::llama(3),
        TinyModel::gemma2(3),
        TinyModel::gemma3(3),
    ] {
        check_padding(&tiny);
    }
}

fn check_padding(tiny: &TinyModel) {
    let model = Llama::<B>::load(&tiny.config, tiny, None, &device()).unwrap();
    let vocab = tiny.config.vocab_size;
    for side in [PaddingSide::Left, PaddingSide::Right] {
        let (batch, all) = logits(&model, tokens(), side);
        for (i, row) in tokens().into_iter().enumerate() {
            let n = row.len();
            let (_, alone) = logits(&model, vec![row], side);
            for pos in 0..n {
                let j = batch.offset(i) + pos;
                let t = batch.seq_len();
                let got = &all[(i * t + j) * vocab..(i * t + j + 1) * vocab];
                let want = &alone[pos * vocab..(pos + 1) * vocab];
                assert!(max_diff(got, want) < 1e-4, "{side:?} row {i} pos {pos}");
            }
        }
    }
}

#[test]
fn kv_cache_generation_equals_full_recompute() {
    // 12 new tokens run well past Gemma's windows of 4, through the cache.
    for tiny in [
        TinyModel::llama(4),
        TinyModel::gemma2(4),
        TinyModel::gemma3(4),
    ] {
        check_kv_cache(&tiny);
    }
}

fn check_kv_cache(tiny: &TinyModel) {
    let model = Llama::<B>::load(&tiny.config, tiny, None, &device()).unwrap();
    let prompts = tokens();
    let cfg = SamplingConfig::greedy(12, vec![]);
    let cached = llm::generate(&model, &prompts, 0, &cfg, &[]).unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        let mut seq = prompt.clone();
        for _ in 0..12 {
            let batch = Batch::new(vec![seq.clone()], 0, PaddingSide::Left).unwrap();
            let out = model
                .forward(&batch, &ForwardOptions::logits(LogitsMode::Last))
                .unwrap();
            seq.push(llm::generate::argmax(&tensor_to_f32(out.logits.unwrap())));
        }
        assert_eq!(cached.tokens[i], seq[prompt.len()..], "row {i}");
    }
}

#[test]
fn stop_tokens_end_rows_independently() {
    let tiny = TinyModel::llama(4);
    let model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let free = llm::generate(
        &model,
        &tokens(),
        0,
        &SamplingConfig::greedy(8, vec![]),
        &[],
    )
    .unwrap();
    // Stop on row 0's third token: row 0 ends there, the others run on unchanged.
    let stop = free.tokens[0][2];
    let stopped = llm::generate(
        &model,
        &tokens(),
        0,
        &SamplingConfig::greedy(8, vec![stop]),
        &[],
    )
    .unwrap();
    assert_eq!(stopped.tokens[0], free.tokens[0][..2]);
    assert!(stopped.stopped[0]);
    for i in 1..3 {
        let want: Vec<u32> = free.tokens[i]
            .iter()
            .copied()
            .take_while(|&t| t != stop)
            .collect();
        assert_eq!(stopped.tokens[i], want, "row {i}");
    }
}

#[test]
fn sampling_is_reproducible_and_independent_of_batch_mates() {
    let tiny = TinyModel::llama(5);
    let model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let cfg = SamplingConfig {
        max_new_tokens: 10,
        temperature: 1.0,
        top_p: 0.9,
        seed: 11,
        stop_tokens: vec![],
    };
    let a = llm::generate(&model, &tokens(), 0, &cfg, &[]).unwrap();
    assert_eq!(a, llm::generate(&model, &tokens(), 0, &cfg, &[]).unwrap());
    let other = SamplingConfig {
        seed: 12,
        ..cfg.clone()
    };
    assert_ne!(a, llm::generate(&model, &tokens(), 0, &other, &[]).unwrap());
    let alone = llm::generate(&model, &tokens()[..1], 0, &cfg, &[]).unwrap();
    assert_eq!(alone.tokens[0], a.tokens[0]);
}

#[test]
fn lora_adapter_equals_merged_weights() {
    let tiny = TinyModel::llama(6);
    let mut model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let dev = device();
    for layer in &mut model.layers {
        for lin in [
            &mut layer.self_attn.q_proj,
            &mut layer.self_attn.v_proj,
            &mut layer.mlp.down_proj,
        ] {
            let (out, inp) = (lin.out_features(), lin.in_features());
            lin.lora = Some(LoraAdapter {
                a: Param::from_tensor(Tensor::random(
                    [4, inp],
                    Distribution::Normal(0.0, 0.3),
                    &dev,
                )),
                b: Param::from_tensor(Tensor::random(
                    [out, 4],
                    Distribution::Normal(0.0, 0.3),
                    &dev,
                )),
                scale: 2.0,
                dropout: llm::model::KeyedDropout::new(0.0),
            });
        }
    }
    let (_, with_adapter) = logits(&model, tokens(), PaddingSide::Left);
    let (_, base) = logits(
        &Llama::<B>::load(&tiny.config, &tiny, None, &dev).unwrap(),
        tokens(),
        PaddingSide::Left,
    );
    assert!(
        max_diff(&with_adapter, &base) > 1e-2,
        "the adapter changes the model"
    );
    for layer in &mut model.layers {
        for lin in [
            &mut layer.self_attn.q_proj,
            &mut layer.self_attn.v_proj,
            &mut layer.mlp.down_proj,
        ] {
            let taken = std::mem::replace(
                lin,
                llm::model::Linear::new(Tensor::zeros([1, 1], &dev), None),
            );
            *lin = taken.merge_lora();
            assert!(lin.lora.is_none());
        }
    }
    let (_, merged) = logits(&model, tokens(), PaddingSide::Left);
    assert!(max_diff(&with_adapter, &merged) < 1e-4);
}

#[test]
fn interventions_add_exactly_their_vector() {
    let tiny = TinyModel::llama(7);
    let model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let batch = Batch::new(tokens(), 0, PaddingSide::Left).unwrap();
    let point = HookPoint::BlockOutput(0);
    let plain = model
        .forward(
            &batch,
            &ForwardOptions::logits(LogitsMode::All).capture([point]),
        )
        .unwrap();
    let v: Tensor<B, 1> = Tensor::random([32], Distribution::Normal(0.0, 1.0), &device());
    let steered = model
        .forward(
            &batch,
            &ForwardOptions::logits(LogitsMode::All)
                .capture([point])
                .intervene(point, v.clone()),
        )
        .unwrap();
    let diff = tensor_to_f32(
        steered.hidden_at(point).unwrap().clone() - plain.hidden_at(point).unwrap().clone(),
    );
    let v = tensor_to_f32(v);
    for chunk in diff.chunks(32) {
        assert!(max_diff(chunk, &v) < 1e-5);
    }
    assert!(
        max_diff(
            &tensor_to_f32(steered.logits.unwrap()),
            &tensor_to_f32(plain.logits.unwrap())
        ) > 1e-3
    );
}

#[test]
fn per_row_interventions_steer_only_their_row() {
    let tiny = TinyModel::llama(7);
    let model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let batch = Batch::new(tokens(), 0, PaddingSide::Left).unwrap();
    let (b, t) = (batch.batch_size(), batch.seq_len());
    let point = HookPoint::BlockOutput(1);
    let opts = ForwardOptions::logits(LogitsMode::All).capture([point]);
    let plain = model.forward(&batch, &opts).unwrap();
    // Row 0 gets a random vector, every other row zeros.
    let v: Tensor<B, 1> = Tensor::random([32], Distribution::Normal(0.0, 1.0), &device());
    let rows = Tensor::cat(
        vec![
            v.clone().unsqueeze::<2>(),
            Tensor::zeros([b - 1, 32], &device()),
        ],
        0,
    );
    let steered = model
        .forward(&batch, &opts.clone().intervene_rows(point, rows))
        .unwrap();
    let diff = tensor_to_f32(
        steered.hidden_at(point).unwrap().clone() - plain.hidden_at(point).unwrap().clone(),
    );
    let v = tensor_to_f32(v);
    let zero = vec![0.0; 32];
    for (k, chunk) in diff.chunks(32).enumerate() {
        let expected = if k < t { &v } else { &zero };
        assert!(max_diff(chunk, expected) < 1e-5, "position {k}");
    }
    // A vector count that is neither 1 nor the batch size is refused.
    let bad = Tensor::<B, 2>::zeros([b + 1, 32], &device());
    let err = model
        .forward(&batch, &opts.intervene_rows(point, bad))
        .unwrap_err()
        .to_string();
    assert!(err.contains("intervention"), "{err}");
}

#[test]
fn early_exit_captures_the_same_activations() {
    let tiny = TinyModel::llama(8);
    let model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let batch = Batch::new(tokens(), 0, PaddingSide::Left).unwrap();
    let points = [HookPoint::Embeddings, HookPoint::BlockOutput(0)];
    let full = model
        .forward(
            &batch,
            &ForwardOptions::logits(LogitsMode::All).capture(points),
        )
        .unwrap();
    let early = model
        .forward(
            &batch,
            &ForwardOptions::logits(LogitsMode::None).capture(points),
        )
        .unwrap();
    assert!(early.logits.is_none());
    for p in points {
        let a = tensor_to_f32(full.hidden_at(p).unwrap().clone());
        let b = tensor_to_f32(early.hidden_at(p).unwrap().clone());
        assert_eq!(a, b, "{p}");
    }
}

#[test]
fn qwen2_biases_and_sliding_window_load_and_run() {
    let mut tiny = TinyModel::llama(9);
    tiny.config.model_type = "qwen2".into();
    tiny.config.sliding_window = Some(3);
    tiny.config.use_sliding_window = Some(true);
    let tiny = TinyModel::random(tiny.config.clone(), 9);
    assert!(
        tiny.weights
            .contains_key("model.layers.0.self_attn.q_proj.bias")
    );
    let dir = tempfile::tempdir().unwrap();
    tiny.save_hf_dir(dir.path(), 1).unwrap();
    let loaded =
        load_location::<B>(ModelLocation::HfDir(dir.path().to_path_buf()), &device()).unwrap();
    let (_, windowed) = logits(&loaded.model, tokens(), PaddingSide::Left);
    let mut no_window = tiny.config.clone();
    no_window.use_sliding_window = Some(false);
    let full = Llama::<B>::load(&no_window, &tiny, None, &device()).unwrap();
    let (_, unwindowed) = logits(&full, tokens(), PaddingSide::Left);
    // The first 3 positions of every row see the same keys either way; later ones do not.
    assert!(windowed.iter().all(|x| x.is_finite()));
    assert!(max_diff(&windowed, &unwindowed) > 1e-4);
}

#[test]
fn half_precision_checkpoints_load() {
    let tiny = TinyModel::llama(10);
    let exact = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let (_, want) = logits(&exact, tokens(), PaddingSide::Left);
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    for (dtype, tol) in [
        (safetensors::Dtype::F16, 0.005),
        (safetensors::Dtype::BF16, 0.03),
    ] {
        let dir = tempfile::tempdir().unwrap();
        tiny.save_hf_dir_as(dir.path(), 2, dtype).unwrap();
        let loaded =
            load_location::<B>(ModelLocation::HfDir(dir.path().into()), &device()).unwrap();
        let (_, got) = logits(&loaded.model, tokens(), PaddingSide::Left);
        let d = max_diff(&got, &want);
        assert!(
            d > 0.0 && d < tol * scale,
            "{dtype:?}: logits differ by {d} (range {scale})"
        );
    }
}

#[test]
fn assistant_spans_cover_exactly_the_replies() {
    let tiny = TinyModel::llama(11);
    let file = GgufFile::from_bytes("tiny.gguf", tiny.to_gguf(GgmlType::F32).to_bytes()).unwrap();
    let tok = llm::Tokenizer::from_gguf(&file).unwrap();
    let chat = llm::ChatTemplate::new(llm::testing::CHATML_TEMPLATE, "<|im_start|>", "<|im_end|>")
        .unwrap();
    let msgs = [
        Message::system("Answer briefly."),
        Message::user("What is the capital of France?"),
        Message::assistant("Paris."),
        Message::user("And of Italy?"),
        Message::assistant("Rome, of course."),
    ];
    let r = chat.render_tokens(&tok, &msgs, false).unwrap();
    assert_eq!(r.assistant_spans.len(), 2);
    let replies: Vec<String> = r
        .assistant_spans
        .iter()
        .map(|s| tok.decode(&r.ids[s.clone()], false).unwrap())
        .collect();
    // Each span is the reply and its end-of-turn marker, nothing of the prompt around it.
    assert_eq!(
        replies,
        ["Paris.<|im_end|>\n", "Rome, of course.<|im_end|>\n"]
    );
    let mask = r.assistant_mask();
    assert_eq!(
        mask.iter().filter(|&&m| m).count(),
        r.assistant_spans.iter().map(|s| s.len()).sum::<usize>()
    );
    // The tokens before the first span are exactly the prompt with its generation prefix.
    let prompt = chat.render_tokens(&tok, &msgs[..2], true).unwrap();
    assert_eq!(r.ids[..r.assistant_spans[0].start], prompt.ids[..]);
}

#[test]
fn continuation_scores_equal_log_softmax_of_full_logits() {
    use llm::score::{Continuation, continuation_logprobs};
    let tiny = TinyModel::llama(3);
    let model = Llama::<B>::load(&tiny.config, &tiny, None, &device()).unwrap();
    let vocab = model.config.vocab_size;
    let items: Vec<Continuation> = tokens()
        .into_iter()
        .zip([vec![11, 12, 13], vec![4], vec![99, 98]])
        .map(|(prompt, continuation)| Continuation {
            prompt,
            continuation,
        })
        .collect();
    let scored = continuation_logprobs(&model, &items, 0).unwrap();
    for (item, got) in items.iter().zip(&scored) {
        // Reference: each sequence alone, full logits, log-softmax on the host.
        let row = [item.prompt.clone(), item.continuation.clone()].concat();
        let (_, all) = logits(&model, vec![row], PaddingSide::Left);
        let expected: Vec<f32> = item
            .continuation
            .iter()
            .enumerate()
            .map(|(j, &id)| {
                let pos = item.prompt.len() - 1 + j;
                let l = &all[pos * vocab..(pos + 1) * vocab];
                let max = l.iter().copied().fold(f32::MIN, f32::max);
                let lse = max + l.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
                l[id as usize] - lse
            })
            .collect();
        assert!(max_diff(got, &expected) < 1e-4, "{got:?} vs {expected:?}");
    }
    // Shared prompts: the same numbers, each prompt run once under several continuations;
    // once without a common prefix, once with one (run once for all prompts).
    let conts = vec![
        vec![vec![11, 12, 13], vec![20], vec![21, 22]],
        vec![vec![4]],
        vec![vec![99, 98], vec![7, 7, 7, 7, 7]],
    ];
    let with_prefix: Vec<Vec<u32>> = tokens()
        .into_iter()
        .map(|t| [vec![1, 2, 3, 4], t].concat())
        .collect();
    for prompts in [tokens(), with_prefix] {
        check_shared_prompts(&model, &prompts, &conts);
    }
    let empty = Continuation {
        prompt: vec![1],
        continuation: vec![],
    };
    assert!(continuation_logprobs(&model, &[empty], 0).is_err());
}

fn check_shared_prompts(model: &Llama<B>, prompts: &[Vec<u32>], conts: &[Vec<Vec<u32>>]) {
    use llm::score::{Continuation, continuation_logprobs};
    let shared = llm::score::shared_prompt_logprobs(model, prompts, conts, 0).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let alone: Vec<Continuation> = conts[i]
            .iter()
            .map(|c| Continuation {
                prompt: p.clone(),
                continuation: c.clone(),
            })
            .collect();
        let expected = continuation_logprobs(model, &alone, 0).unwrap();
        assert_eq!(shared[i].len(), expected.len());
        for (got, want) in shared[i].iter().zip(&expected) {
            assert!(max_diff(got, want) < 1e-4, "{got:?} vs {want:?}");
        }
    }
}
