#![allow(clippy::unwrap_used)]
//! Manifests: the shipped experiments load and plan; each kind of mistake gets a message
//! naming the key and the file:line that set it; plans, hashes and Slurm scripts.
//!
//! Manifest paths are relative to the checkout (as on the command line), so every test
//! here runs from the workspace root.

use pipeline::plan::StageKind;
use pipeline::{Plan, Target};
use std::path::{Path, PathBuf};

fn at_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::set_current_dir(&root).unwrap();
    root.canonicalize().unwrap()
}

/// A minimal valid manifest with `extra` appended, written to a temp dir.
fn manifest(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("m.toml");
    let text = format!(
        "[experiment]\nname = \"t\"\n\n[[models]]\nname = \"m\"\nsource = \"smollm2-135m\"\n\n\
         [perturbations]\ncalibration = [\"gsm8k\", \"bad_medical\"]\nheld_out = [\"number_sequence\"]\nseeds = [1]\n\n\
         [finetune]\nprofile = \"cpu\"\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn error(path: &Path) -> String {
    pipeline::load(path).unwrap_err().to_string()
}

#[test]
fn shipped_experiments_load_and_plan() {
    at_root();
    let default = pipeline::load(Path::new("experiments/default.toml")).unwrap();
    let m = &default.manifest;
    // Included from protocol.toml, overridden where default.toml says so.
    assert_eq!(m.perturbations.calibration.len(), 4);
    assert_eq!(m.perturbations.held_out.len(), 3);
    assert_eq!(m.perturbations.seeds, vec![1, 2]);
    assert_eq!(m.traits.layer, Some(14));
    assert_eq!(m.monitor.anchor.as_deref(), Some("gsm8k"));
    let plan = Plan::build(&default, &[Target::Fig(1)]).unwrap();
    // fig1: calibration + number_sequence drift (5 x 2 runs), EM of bad_medical only.
    let count = |k: StageKind| plan.stages.iter().filter(|s| s.kind == k).count();
    assert_eq!(count(StageKind::Traits), 1);
    assert_eq!(count(StageKind::Finetune), 10);
    assert_eq!(count(StageKind::Drift), 10);
    // The base model's step 0 once, then bad_medical's two seeds, which copy it.
    assert_eq!(count(StageKind::Em), 1 + 2);
    assert_eq!(count(StageKind::Pca), 1);
    let em: Vec<usize> = (0..plan.stages.len())
        .filter(|&i| plan.stages[i].kind == StageKind::Em)
        .collect();
    assert!(plan.stages[em[0]].cell.is_none());
    let base_dir = plan.dir(em[0]).display().to_string();
    for &i in &em[1..] {
        let argv = plan.argv(i, Path::new("out")).unwrap();
        assert!(
            argv.windows(2)
                .any(|w| w[0] == "--reference" && w[1] == base_dir),
            "{argv:?}"
        );
    }
    // all: 7 perturbations x 2 seeds, plus full finetuning of bad_medical and gsm8k.
    let all = Plan::build(&default, &[Target::All]).unwrap();
    assert_eq!(all.cells().len(), 14 + 2);
    assert_eq!(
        all.stages
            .iter()
            .filter(|s| s.kind == StageKind::Em)
            .count(),
        1 + 16
    );

    // The paper's grid plans without its weights; the missing ones are listed.
    let paper = pipeline::load(Path::new("experiments/paper.toml")).unwrap();
    assert_eq!(paper.missing_models().len(), 4);
    let plan = Plan::build(&paper, &[Target::All]).unwrap();
    // 7 perturbations x 3 seeds per model, plus the anchor (3 seeds), 2 long runs, 2 full.
    assert_eq!(plan.cells().len(), 4 * (7 * 3 + 3 + 2 + 2));
    assert!(plan.stages.iter().any(|s| s.kind == StageKind::Sae));
    assert!(plan.stages.iter().any(|s| s.kind == StageKind::Semantic));
    let em = plan
        .stages
        .iter()
        .position(|s| s.kind == StageKind::Em)
        .unwrap();
    assert!(
        plan.display(em).contains("em-freeform"),
        "{}",
        plan.display(em)
    );
}

#[test]
fn each_kind_of_mistake_names_the_key_and_line() {
    at_root();
    let tmp = tempfile::tempdir().unwrap();
    // Unknown key: serde's message, the dotted key, file:line.
    let p = manifest(tmp.path(), "[drift]\nrandom_base = 3\n");
    let e = error(&p);
    assert!(e.contains("unknown field `random_base`"), "{e}");
    assert!(
        e.contains("`drift.random_base`") && e.contains("m.toml:16"),
        "{e}"
    );
    // Wrong type.
    let p = manifest(tmp.path(), "[em]\ntau = \"high\"\n");
    let e = error(&p);
    assert!(e.contains("em.tau") && e.contains("m.toml:16"), "{e}");
    // A missing file.
    let p = manifest(tmp.path(), "[traits]\nbank = \"data/traits/nope.toml\"\n");
    let e = error(&p);
    assert!(
        e.contains("traits.bank") && e.contains("does not exist"),
        "{e}"
    );
    assert!(e.contains("m.toml:16"), "{e}");
    // Impossible settings.
    let p = manifest(tmp.path(), "[em]\ntau = 1.5\n");
    assert!(error(&p).contains("`em.tau`: the EM threshold is a rate"));
    let p = manifest(tmp.path(), "[monitor]\nanchor = \"alpaca\"\n");
    assert!(error(&p).contains("`alpaca` is not one of the experiment's perturbations"));
    let p = manifest(tmp.path(), "[figures]\nmake = [\"fig12\"]\n");
    assert!(error(&p).contains("unknown target `fig12`"));
    let p = manifest(tmp.path(), "[em]\njudge = \"freeform\"\n");
    assert!(error(&p).contains("[em.freeform]"));
    let p = manifest(tmp.path(), "[monitor]\nlabel = \"logodds\"\n");
    let e = error(&p);
    assert!(
        e.contains("`monitor.label`") && e.contains("em.controls"),
        "{e}"
    );
    let p = manifest(tmp.path(), "[em]\nlogodds_tau = 2.0\n");
    assert!(error(&p).contains("`em.logodds_tau`"));
    let p = manifest(tmp.path(), "[em]\ncontrols = \"data/em/none.toml\"\n");
    assert!(error(&p).contains("`em.controls`") && error(&p).contains("does not exist"));
    let p = manifest(tmp.path(), "[em]\ntrait_steps = [4]\n");
    assert!(error(&p).contains("`em.trait_steps`") && error(&p).contains("trait_items"));
    let p = manifest(
        tmp.path(),
        "[em]\ntrait_items = true\nsteps = [4, 8]\ntrait_steps = [16]\n",
    );
    let e = error(&p);
    assert!(e.contains("step 16 is not one of the labelled"), "{e}");
    // Leaks and unknown perturbations.
    let text = std::fs::read_to_string(manifest(tmp.path(), ""))
        .unwrap()
        .replace("[\"number_sequence\"]", "[\"gsm8k\"]");
    std::fs::write(&p, text).unwrap();
    let e = error(&p);
    assert!(
        e.contains("perturbations.held_out") && e.contains("leak"),
        "{e}"
    );
    assert!(e.contains("m.toml:10"), "{e}");
    let text = std::fs::read_to_string(manifest(tmp.path(), ""))
        .unwrap()
        .replace("bad_medical", "bad_medicine");
    std::fs::write(&p, text).unwrap();
    let e = error(&p);
    assert!(
        e.contains("unknown perturbation `bad_medicine`") && e.contains("known:"),
        "{e}"
    );
    // Not TOML at all, and a missing file.
    std::fs::write(&p, "[experiment\n").unwrap();
    assert!(error(&p).contains("m.toml"));
    assert!(error(&tmp.path().join("absent.toml")).contains("cannot read"));
}

#[test]
fn includes_merge_and_cycles_are_refused() {
    at_root();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("base.toml"),
        "[perturbations]\ncalibration = [\"gsm8k\"]\nseeds = [7, 8]\n\n[drift]\nrandom_bases = 3\n",
    )
    .unwrap();
    let top = tmp.path().join("top.toml");
    std::fs::write(
        &top,
        "include = [\"base.toml\"]\n[experiment]\nname = \"x\"\n[[models]]\nname = \"m\"\nsource = \"smollm2-135m\"\n\
         [perturbations]\nseeds = [1]\n[finetune]\nprofile = \"cpu\"\n[drift]\nbasis_seed = 5\n",
    )
    .unwrap();
    let m = pipeline::load(&top).unwrap().manifest;
    assert_eq!(m.perturbations.calibration, vec!["gsm8k"]); // from base
    assert_eq!(m.perturbations.seeds, vec![1]); // overridden
    assert_eq!((m.drift.random_bases, m.drift.basis_seed), (3, 5)); // merged key by key
    // An error in an included file points into that file.
    std::fs::write(
        tmp.path().join("base.toml"),
        "[perturbations]\ncalibration = [\"gsm8k\"]\nseeds = [7]\n[drift]\nrandom_bases = -1\n",
    )
    .unwrap();
    let e = error(&top);
    assert!(
        e.contains("base.toml:5") && e.contains("drift.random_bases"),
        "{e}"
    );
    std::fs::write(tmp.path().join("base.toml"), "include = [\"top.toml\"]\n").unwrap();
    assert!(error(&top).contains("include cycle"));
}

/// With the per-trait items, each run's EM stage scores them where `em.trait_steps` says,
/// takes step 0 from the model's base stage, and is re-run when an item file changes.
#[test]
fn the_label_controls_reach_every_em_stage_and_their_hash() {
    let root = at_root();
    let tmp = tempfile::tempdir().unwrap();
    let extra = "[em]\ncontrols = \"data/em/controls.toml\"\n[monitor]\nlabel = \"logodds\"\n";
    let loaded = pipeline::load(&manifest(tmp.path(), extra)).unwrap();
    let plan = Plan::build(&loaded, &[Target::All]).unwrap();
    let em: Vec<usize> = (0..plan.stages.len())
        .filter(|&i| plan.stages[i].kind == StageKind::Em)
        .collect();
    assert!(em.len() >= 2);
    // The command gets the file under the project root; the hash has it as written, so
    // an artifact's identity does not depend on where the checkout lives.
    let controls = root.join("data/em/controls.toml").display().to_string();
    for &i in &em {
        let argv = plan.argv(i, Path::new("out")).unwrap();
        assert!(
            argv.windows(2)
                .any(|w| w[0] == "--controls" && w[1] == controls),
            "{argv:?}"
        );
        let written = pipeline::Arg::Data("data/em/controls.toml".into());
        assert!(plan.stages[i].args.contains(&written));
    }
    // The base model's stage checks the protocol's tau against the controls.
    let base = plan.argv(em[0], Path::new("out")).unwrap();
    assert!(base.windows(2).any(|w| w == ["--tau", "0.25"]), "{base:?}");
    let without = pipeline::load(&manifest(tmp.path(), "")).unwrap();
    let other = Plan::build(&without, &[Target::All]).unwrap();
    assert_ne!(plan.stages[em[0]].hash, other.stages[em[0]].hash);
}

#[test]
fn trait_items_go_where_trait_steps_say() {
    at_root();
    let tmp = tempfile::tempdir().unwrap();
    let extra = "[em]\ntrait_items = true\nsteps = [8, 16]\ntrait_steps = [16]\n";
    let loaded = pipeline::load(&manifest(tmp.path(), extra)).unwrap();
    let plan = Plan::build(&loaded, &[Target::All]).unwrap();
    let em: Vec<usize> = (0..plan.stages.len())
        .filter(|&i| plan.stages[i].kind == StageKind::Em)
        .collect();
    let base = plan.argv(em[0], Path::new("out")).unwrap();
    assert!(base.contains(&"--trait-bank".to_string()), "{base:?}");
    assert!(!base.contains(&"--reference".to_string()), "{base:?}");
    for &i in &em[1..] {
        let argv = plan.argv(i, Path::new("out")).unwrap();
        assert!(
            argv.windows(2).any(|w| w == ["--trait-steps", "16"]),
            "{argv:?}"
        );
        assert!(
            argv.windows(2).any(|w| w == ["--steps", "8,16"]),
            "{argv:?}"
        );
        assert!(plan.stages[i].inputs.contains(&em[0]), "{argv:?}");
    }
}

#[test]
fn hashes_follow_inputs_and_settings() {
    let root = at_root();
    let tmp = tempfile::tempdir().unwrap();
    let bank = tmp.path().join("bank.toml");
    std::fs::copy(root.join("data/traits/alignment.toml"), &bank).unwrap();
    let extra = format!("[traits]\nbank = \"{}\"\n", bank.display());
    let plan = |extra: &str| {
        let loaded = pipeline::load(&manifest(tmp.path(), extra)).unwrap();
        Plan::build(&loaded, &[Target::All]).unwrap()
    };
    let a = plan(&extra);
    let id = |p: &Plan, id: &str| {
        p.stages
            .iter()
            .find(|s| s.id() == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .hash
            .clone()
    };
    let drift = "drift/m-bad_medical-s1";
    let ft = "finetune/m-bad_medical-s1";
    // Same manifest, same hashes (and so the same artifact directories).
    assert_eq!(id(&a, drift), id(&plan(&extra), drift));
    // Editing the bank re-runs traits and everything measured with them, not finetuning.
    std::fs::write(
        &bank,
        std::fs::read_to_string(&bank).unwrap() + "\n# edited\n",
    )
    .unwrap();
    let b = plan(&extra);
    assert_ne!(id(&a, "traits/m"), id(&b, "traits/m"));
    assert_ne!(id(&a, drift), id(&b, drift));
    assert_eq!(id(&a, ft), id(&b, ft));
    // A finetuning setting re-runs the runs and what reads them.
    let c = plan(&format!("set = {{ \"data.n_examples\" = 8 }}\n{extra}"));
    assert_ne!(id(&b, ft), id(&c, ft));
    assert_ne!(id(&b, drift), id(&c, drift));
    assert_eq!(id(&b, "traits/m"), id(&c, "traits/m"));
    // Stages come after their inputs.
    for (i, s) in c.stages.iter().enumerate() {
        assert!(s.inputs.iter().all(|&j| j < i), "{}", s.id());
    }
}

#[test]
fn slurm_scripts_chain_shared_cells_and_merge() {
    at_root();
    let tmp = tempfile::tempdir().unwrap();
    let loaded = pipeline::load(&manifest(tmp.path(), "")).unwrap();
    let plan = Plan::build(&loaded, &[Target::All]).unwrap();
    let request = pipeline::slurm::ExportRequest {
        flags: pipeline::slurm::SlurmSpec {
            partition: Some("gpu".into()),
            time: Some("04:00:00".into()),
            ..Default::default()
        },
        backend: Some("cuda".into()),
        targets: vec!["all".into()],
        cwd: "/elsewhere".into(),
        ..Default::default()
    };
    let opts = pipeline::slurm::SlurmOptions::resolve(&loaded, request).unwrap();
    let scripts = pipeline::slurm::scripts(&plan, "t", &opts);
    let get = |n: &str| &scripts.iter().find(|(f, _)| f == n).unwrap().1;
    let cells = get("cells.sbatch");
    assert!(cells.contains("#SBATCH --array=0-2\n"), "{cells}"); // 3 cells
    assert!(cells.contains("#SBATCH --gres=gpu:1") && cells.contains("--partition=gpu"));
    // Absolute paths throughout, the jobs started in the project root.
    let root = at_root();
    let manifest = tmp.path().join("m.toml").canonicalize().unwrap();
    assert!(
        cells.contains(&format!(
            "{}/target/release/traitwatch --backend cuda run {} --cell \"$SLURM_ARRAY_TASK_ID\"",
            root.display(),
            manifest.display()
        )),
        "{cells}"
    );
    assert!(cells.contains(&format!("#SBATCH --chdir={}\n", root.display())));
    assert!(get("shared.sbatch").contains(" --shared\n"));
    let merge = get("merge.sbatch");
    assert!(merge.contains(" --merge --targets all\n") && !merge.contains("--gres"));
    let submit = get("submit.sh");
    assert!(submit.contains("--dependency=afterok:\"$shared\""));
    assert!(submit.contains("--dependency=afterok:\"$cells\""));
    // Every cell's stages are exactly the cell's finetune, drift and EM.
    for (n, (cell, stages)) in plan.cells().iter().enumerate() {
        let chosen = plan.select(pipeline::runner::Selection::Cell(n)).unwrap();
        assert_eq!(&chosen, stages);
        assert!(
            chosen
                .iter()
                .all(|&i| plan.stages[i].cell.as_ref() == Some(cell))
        );
    }
    assert!(plan.select(pipeline::runner::Selection::Cell(99)).is_err());
}

#[test]
fn extra_runs_get_their_own_label_settings_and_checks() {
    at_root();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        dir.path(),
        "\n[[extra_runs]]\ntag = \"full\"\nperturbations = [\"bad_medical\"]\nseeds = [7]\n\
         set = { mode = \"full\" }\nem_steps = [2]\n\n\
         [[extra_runs]]\nperturbations = [\"customer_support\"]\n\n\
         [monitor]\nanchor = \"customer_support\"\n",
    );
    let loaded = pipeline::load(&path).unwrap();
    let plan = Plan::build(&loaded, &[Target::All]).unwrap();
    let cells: Vec<String> = plan
        .cells()
        .iter()
        .map(|(c, _)| format!("{}-s{}", c.perturbation, c.seed))
        .collect();
    assert!(
        cells.contains(&"bad_medical+full-s7".to_string()),
        "{cells:?}"
    );
    assert!(
        cells.contains(&"customer_support-s1".to_string()),
        "{cells:?}"
    );
    assert_eq!(cells.len(), 5, "{cells:?}");
    let full = plan
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Finetune && s.slug.contains("bad_medical_full"))
        .unwrap();
    let args: Vec<String> = (0..plan.stages.len())
        .find(|&i| plan.stages[i].id() == full.id())
        .map(|i| plan.argv(i, Path::new("out")).unwrap())
        .unwrap();
    assert!(args.contains(&"mode=\"full\"".to_string()), "{args:?}");
    assert!(args.contains(&"seed=7".to_string()), "{args:?}");
    // Its EM labels only step 2; its drift is scored by the PCA, not fitted on.
    let em = plan
        .stages
        .iter()
        .position(|s| s.kind == StageKind::Em && s.slug.contains("bad_medical_full"))
        .unwrap();
    let em_args = plan.argv(em, Path::new("out")).unwrap();
    assert!(
        em_args.windows(2).any(|w| w == ["--steps", "2"]),
        "{em_args:?}"
    );
    assert!(
        em_args.contains(&"bad_medical+full".to_string()),
        "{em_args:?}"
    );

    // An untagged group of a split perturbation would collide with the split's runs.
    let clash = manifest(
        dir.path(),
        "\n[[extra_runs]]\nperturbations = [\"gsm8k\"]\nset = { mode = \"full\" }\n",
    );
    let e = error(&clash);
    assert!(e.contains("extra_runs.0.tag") && e.contains("gsm8k"), "{e}");
    let bad_tag = manifest(
        dir.path(),
        "\n[[extra_runs]]\ntag = \"full ft\"\nperturbations = [\"gsm8k\"]\n",
    );
    assert!(error(&bad_tag).contains("extra_runs.0.tag"));
    let unknown = manifest(
        dir.path(),
        "\n[[extra_runs]]\ntag = \"x\"\nperturbations = [\"bad_cooking\"]\n",
    );
    assert!(error(&unknown).contains("unknown perturbation `bad_cooking`"));
}
