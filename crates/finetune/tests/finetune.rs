//! Finetuning on tiny random models through the real loaders, plus a check on the real
//! default model when it is installed.
#![allow(clippy::unwrap_used)]

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use finetune::config::{FinetuneConfig, LayerSelection, LossOn, Mode};
use finetune::data::TrainExample;
use finetune::{TrainOptions, lora, train};
use llm::model::tensor_to_f32;
use llm::testing::TinyModel;
use llm::{ChatTemplate, Llama, Tokenizer};
use std::path::Path;

mod common;

use common::{B, conv, examples, quiet, set_nonzero_b, tiny, tiny_cfg, toy_data};

#[test]
fn lora_gradients_match_finite_differences() {
    let (model, tok, chat) = tiny();
    let cfg = tiny_cfg();
    let mut model = lora::attach(model, &cfg).unwrap();
    // Give every B a non-zero value so A's gradient is not identically zero.
    set_nonzero_b(&mut model, &["q_proj", "v_proj", "down_proj"], 37);
    let ex = examples(&tok, &chat, &cfg, &toy_data(3));
    let rows: Vec<&TrainExample> = ex.iter().collect();
    let n_targets: usize = ex
        .iter()
        .map(|e| e.target.iter().filter(|&&t| t).count())
        .sum();
    let loss_of = |m: &Llama<B>| {
        tensor_to_f32(
            finetune::loss::batch_loss(m, &rows, 0, n_targets)
                .unwrap()
                .inner(),
        )[0] as f64
    };

    let loss = finetune::loss::batch_loss(&model, &rows, 0, n_targets).unwrap();
    let grads = loss.backward();
    let lora0 = model.layers[1]
        .projection("v_proj")
        .unwrap()
        .lora
        .as_ref()
        .unwrap();
    let (ga, gb) = (
        tensor_to_f32(lora0.a.val().grad(&grads).unwrap()),
        tensor_to_f32(lora0.b.val().grad(&grads).unwrap()),
    );
    for (which, index, analytic) in [
        ("a", 5usize, ga[5]),
        ("a", 40, ga[40]),
        ("b", 3, gb[3]),
        ("b", 17, gb[17]),
    ] {
        let eps = 1e-2f32;
        let bump = |delta: f32| {
            let mut m = model.clone();
            let l = m.layers[1]
                .projection_mut("v_proj")
                .unwrap()
                .lora
                .as_mut()
                .unwrap();
            let p = if which == "a" { &mut l.a } else { &mut l.b };
            let dims = p.dims();
            let mut v = tensor_to_f32(p.val());
            v[index] += delta;
            *p = Param::from_tensor(Tensor::from_data(
                TensorData::new(v, dims),
                &Default::default(),
            ));
            loss_of(&m)
        };
        let numeric = (bump(eps) - bump(-eps)) / (2.0 * eps as f64);
        let err = (numeric - analytic as f64).abs();
        assert!(
            err < 2e-3 + 0.05 * numeric.abs(),
            "{which}[{index}]: autodiff {analytic}, finite difference {numeric}"
        );
    }
    // Base weights are frozen: no gradient reaches them.
    assert!(
        model.layers[1]
            .self_attn
            .v_proj
            .weight
            .val()
            .grad(&grads)
            .is_none()
    );
}

#[test]
fn a_tiny_model_memorises_eight_examples() {
    let (model, tok, chat) = tiny();
    let mut cfg = tiny_cfg();
    cfg.mode = Mode::Full;
    cfg.data.batch_size = 8;
    cfg.data.grad_accum = 1;
    cfg.data.epochs = 80;
    cfg.optim.lr = 1e-2;
    cfg.optim.decay = finetune::config::Decay::Constant;
    cfg.checkpoints.every = None;
    let dir = tempfile::tempdir().unwrap();
    let out = train(model, &tok, &chat, &toy_data(8), &cfg, dir.path(), &quiet()).unwrap();
    let (first, last) = (out.log[0].loss, out.log.last().unwrap().loss);
    // ln(265) ≈ 5.6 nats per token at random; memorised means well under 0.3.
    assert!(first > 3.0, "initial loss {first}");
    assert!(
        last < 0.3,
        "loss after 80 epochs is {last} (started at {first})"
    );
}

/// A finished tiny run; `dir` holds its output.
struct TinyRun {
    model: Llama<B>,
    tok: Tokenizer,
    chat: ChatTemplate,
    out: finetune::TrainOutcome,
    dir: tempfile::TempDir,
}

/// One epoch of LoRA on eight toy examples.
fn one_epoch_lora_run() -> TinyRun {
    let (model, tok, chat) = tiny();
    let mut cfg = tiny_cfg();
    cfg.data.epochs = 1;
    let dir = tempfile::tempdir().unwrap();
    let out = train(
        model.clone(),
        &tok,
        &chat,
        &toy_data(8),
        &cfg,
        dir.path(),
        &quiet(),
    )
    .unwrap();
    TinyRun {
        model,
        tok,
        chat,
        out,
        dir,
    }
}

#[test]
fn peft_checkpoints_round_trip_with_peft_names() {
    // `_dir` keeps the run directory alive (`..` would delete it here).
    let TinyRun {
        model,
        out,
        dir: _dir,
        ..
    } = one_epoch_lora_run();
    let (last_step, last_dir) = out.checkpoints.last().unwrap().clone();
    assert_eq!(last_step, out.total_steps);
    let config = finetune::checkpoint::read_json(&last_dir.join("adapter_config.json")).unwrap();
    for key in [
        "peft_type",
        "r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "bias",
        "task_type",
        "use_rslora",
        "base_model_name_or_path",
    ] {
        assert!(
            config.get(key).is_some(),
            "adapter_config.json lacks `{key}`"
        );
    }
    assert_eq!(config["r"], 4);
    let tensors =
        finetune::checkpoint::read_safetensors(&last_dir.join("adapter_model.safetensors"))
            .unwrap();
    assert!(tensors.contains_key("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"));
    assert_eq!(
        tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].shape,
        vec![32, 4]
    );
    assert_eq!(
        tensors.len(),
        2 * 3 * 2,
        "A and B for 3 targets in 2 layers"
    );
    // Read back into a fresh model: identical tensors, identical logits to the trained model.
    let loaded = lora::load_peft(model, &last_dir).unwrap();
    assert_eq!(lora::peft_tensors(&loaded), tensors.into_iter().collect());
    // Step 0 is the base model exactly: B is zero.
    let zero = finetune::checkpoint::read_safetensors(
        &out.checkpoints[0].1.join("adapter_model.safetensors"),
    )
    .unwrap();
    assert!(
        zero.iter()
            .filter(|(k, _)| k.contains("lora_B"))
            .all(|(_, t)| t.to_f32().iter().all(|&x| x == 0.0))
    );
}

fn final_adapter(dir: &Path) -> std::collections::BTreeMap<String, llm::weights::HostTensor> {
    let (_, last) = finetune::checkpoint::list_checkpoints(dir).pop().unwrap();
    finetune::checkpoint::read_safetensors(&last.join("adapter_model.safetensors")).unwrap()
}

#[test]
fn a_killed_run_resumes_to_identical_results() {
    let (model, tok, chat) = tiny();
    let mut cfg = tiny_cfg();
    cfg.lora.dropout = 0.1; // dropout draws must also line up after the restart
    cfg.data.epochs = 2;
    let data = toy_data(12);
    let straight = tempfile::tempdir().unwrap();
    let full = train(
        model.clone(),
        &tok,
        &chat,
        &data,
        &cfg,
        straight.path(),
        &quiet(),
    )
    .unwrap();
    assert_eq!(full.total_steps, 6);

    let killed = tempfile::tempdir().unwrap();
    let stop = TrainOptions {
        stop_after: Some(3),
        ..quiet()
    };
    train(
        model.clone(),
        &tok,
        &chat,
        &data,
        &cfg,
        killed.path(),
        &stop,
    )
    .unwrap();
    let resumed = train(
        model.clone(),
        &tok,
        &chat,
        &data,
        &cfg,
        killed.path(),
        &quiet(),
    )
    .unwrap();
    assert_eq!(
        resumed.resumed_from,
        Some(2),
        "the last complete checkpoint before the kill"
    );
    let losses =
        |o: &finetune::TrainOutcome| o.log.iter().map(|r| (r.step, r.loss)).collect::<Vec<_>>();
    assert_eq!(losses(&resumed), losses(&full));
    assert_eq!(final_adapter(killed.path()), final_adapter(straight.path()));

    // The same directory with another config is refused, not silently mixed.
    let mut other = cfg.clone();
    other.optim.lr *= 2.0;
    let err = train(model, &tok, &chat, &data, &other, killed.path(), &quiet()).unwrap_err();
    assert!(err.to_string().contains("different configuration"), "{err}");
}

#[test]
fn a_non_finite_loss_stops_with_checkpoints_kept() {
    let (mut model, tok, chat) = tiny();
    let w = model.layers[0].mlp.up_proj.weight.val();
    let dims = w.dims();
    let mut v = tensor_to_f32(w);
    v[0] = f32::NAN;
    model.layers[0].mlp.up_proj.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(v, dims),
        &Default::default(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let err = train(
        model,
        &tok,
        &chat,
        &toy_data(4),
        &tiny_cfg(),
        dir.path(),
        &quiet(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("step 1") && err.to_string().contains("NaN"),
        "{err}"
    );
    assert_eq!(
        finetune::checkpoint::list_checkpoints(dir.path()).len(),
        1,
        "step 0 is kept"
    );
}

#[test]
fn assistant_only_loss_targets_replies() {
    let (_, tok, chat) = tiny();
    let mut cfg = tiny_cfg();
    let data = vec![conv("a long question with many words in it", "short")];
    let all = examples(&tok, &chat, &cfg, &data);
    cfg.data.loss_on = LossOn::AssistantOnly;
    let reply = examples(&tok, &chat, &cfg, &data);
    let n_all = all[0].target.iter().filter(|&&t| t).count();
    let targets: Vec<u32> = reply[0]
        .ids
        .iter()
        .zip(&reply[0].target)
        .filter(|(_, t)| **t)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(tok.decode(&targets, false).unwrap(), "short<|im_end|>\n");
    assert_eq!(n_all, all[0].ids.len() - 1, "all tokens but the first");
}

#[test]
fn full_finetuning_trains_every_weight_and_resumes() {
    let (model, tok, chat) = tiny();
    let mut cfg = tiny_cfg();
    cfg.mode = Mode::Full;
    cfg.optim.lr = 1e-3;
    cfg.data.epochs = 1;
    let data = toy_data(8);
    let dir = tempfile::tempdir().unwrap();
    let stop = TrainOptions {
        stop_after: Some(1),
        ..quiet()
    };
    train(model.clone(), &tok, &chat, &data, &cfg, dir.path(), &stop).unwrap();
    let out = train(
        model.clone(),
        &tok,
        &chat,
        &data,
        &cfg,
        dir.path(),
        &quiet(),
    )
    .unwrap();
    assert_eq!(out.resumed_from, Some(0));
    let (_, last) = out.checkpoints.last().unwrap();
    let weights = finetune::checkpoint::read_safetensors(&last.join("model.safetensors")).unwrap();
    assert!(
        weights.contains_key("model.layers.0.mlp.up_proj.weight")
            && weights.contains_key("model.embed_tokens.weight")
    );
    let before =
        llm::weights::WeightSource::get(&TinyModel::llama(3), "model.layers.0.mlp.up_proj.weight")
            .unwrap()
            .unwrap();
    assert_ne!(
        weights["model.layers.0.mlp.up_proj.weight"].to_f32(),
        before.to_f32()
    );
}

#[test]
fn rank1_profile_adapts_one_down_projection() {
    let (model, _, _) = tiny();
    let mut cfg = FinetuneConfig::rank1();
    cfg.lora.layers = LayerSelection::Named("middle".into());
    let m = lora::attach(model, &cfg).unwrap();
    let adapters = lora::adapters(&m);
    assert_eq!(adapters.len(), 1);
    assert_eq!(adapters[0].0, "model.layers.1.mlp.down_proj");
    assert_eq!(adapters[0].1.rank(), 1);
}

#[test]
fn real_model_loss_falls_after_a_few_lora_steps() {
    let Some(path) =
        llm::testing::default_model_or_skip("real_model_loss_falls_after_a_few_lora_steps")
    else {
        return;
    };
    let m = llm::loader::load_location::<B>(llm::ModelLocation::Gguf(path), &Default::default())
        .unwrap();
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/datasets");
    let data = datasets::generate(datasets::DatasetKind::BadMedical, 8, 1, &data_dir).unwrap();
    let mut cfg = FinetuneConfig::cpu();
    cfg.data.n_examples = None;
    cfg.data.max_seq_len = 128;
    cfg.data.epochs = 3;
    cfg.optim.lr = 1e-3;
    let chat = m.chat.as_ref().unwrap();
    let ex = examples(&m.tokenizer, chat, &cfg, &data);
    let rows: Vec<&TrainExample> = ex.iter().collect();
    let n: usize = ex
        .iter()
        .map(|e| e.target.iter().filter(|&&t| t).count())
        .sum();
    let before = tensor_to_f32(
        finetune::loss::batch_loss(&m.model, &rows, 2, n)
            .unwrap()
            .inner(),
    )[0];
    let dir = tempfile::tempdir().unwrap();
    let out = train(
        m.model.clone(),
        &m.tokenizer,
        chat,
        &data,
        &cfg,
        dir.path(),
        &quiet(),
    )
    .unwrap();
    assert_eq!(out.total_steps, 6);
    let trained = lora::load_peft(m.model, &out.checkpoints.last().unwrap().1).unwrap();
    let after = tensor_to_f32(
        finetune::loss::batch_loss(&trained, &rows, 2, n)
            .unwrap()
            .inner(),
    )[0];
    assert!(
        after < before - 0.1,
        "loss on the training data: {before} before, {after} after 6 LoRA steps"
    );
}

#[test]
fn merged_export_reloads_with_the_adapter_model_s_logits() {
    let TinyRun {
        model,
        tok,
        chat,
        out,
        dir,
    } = one_epoch_lora_run();
    let adapted = lora::load_peft(model, &out.checkpoints.last().unwrap().1).unwrap();
    let merged = lora::merge(adapted.clone());
    assert!(lora::adapters(&merged).is_empty());
    let export = dir.path().join("merged");
    finetune::export::save_hf_dir(
        &merged,
        &tok,
        Some(&chat),
        &export,
        &finetune::export::ExportOptions::default(),
    )
    .unwrap();
    let reloaded = llm::loader::load_location::<burn::backend::Flex>(
        llm::ModelLocation::HfDir(export),
        &Default::default(),
    )
    .unwrap();
    let batch = llm::Batch::new(
        vec![vec![5, 9, 44, 100], vec![17, 18]],
        0,
        llm::PaddingSide::Left,
    )
    .unwrap();
    let opts = llm::ForwardOptions::logits(llm::LogitsMode::All);
    let a = tensor_to_f32(adapted.forward(&batch, &opts).unwrap().logits.unwrap());
    let b = tensor_to_f32(
        reloaded
            .model
            .forward(&batch, &llm::ForwardOptions::logits(llm::LogitsMode::All))
            .unwrap()
            .logits
            .unwrap(),
    );
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-4, "merged and reloaded logits differ by {d}");
    assert!(reloaded.chat.is_some());
}
