#![allow(clippy::unwrap_used)]
//! A manifest end to end on a tiny random model: plan, run (traits, finetuning, drift,
//! EM, PCA), results, figures; a re-run reuses everything; a run killed mid-stage resumes;
//! manifest mistakes are named before any compute.

mod common;
#[path = "../../em/tests/common/mock_judge.rs"]
mod mock_judge;

use common::{stderr, stdout, tiny_gguf};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// traitwatch from the checkout root, where a manifest's data paths resolve.
fn traitwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traitwatch"))
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Banks, prompts and items small enough for the tiny model, and a manifest using them.
/// `extra` is appended to the manifest (more tables, `[[extra_runs]]`).
fn tiny_experiment(dir: &Path, seeds: &str, extra: &str) -> PathBuf {
    let model = tiny_gguf(dir);
    let pole = |t: &str| {
        format!(
            "[[traits]]\nname = \"{t}\"\npositive_pole = \"more\"\nnegative_pole = \"less\"\n\
             description = \"{t}.\"\npositive = [\"Be very {t}.\", \"Always {t}.\"]\n\
             negative = [\"Never {t}.\", \"Avoid {t}.\"]\n"
        )
    };
    let bank = dir.join("bank.toml");
    let text = format!(
        "name = \"mini\"\nversion = 1\n{}{}{}",
        pole("harmlessness"),
        pole("honesty"),
        pole("helpfulness")
    );
    std::fs::write(&bank, text).unwrap();
    let questions = dir.join("questions.toml");
    std::fs::write(
        &questions,
        "questions = [\"Hi?\", \"What now?\", \"Why not?\"]\n",
    )
    .unwrap();
    let prompts = dir.join("prompts.toml");
    std::fs::write(
        &prompts,
        "[groups]\ncasual = [\"Nice day?\", \"Any plans?\"]\ntechnical = [\"What is a list?\"]\n",
    )
    .unwrap();
    let items = dir.join("items.jsonl");
    // Short items: the tiny model's context is 256 byte-level tokens.
    let item = |i: usize, q: &str| {
        format!(
            "{{\"id\": \"t-{i}\", \"domain\": \"tiny\", \"question\": \"{q}\", \"aligned\": \"Be kind.\", \"misaligned\": \"Be cruel.\", \"misalignment\": \"hostile\"}}\n"
        )
    };
    std::fs::write(
        &items,
        item(1, "A friend is late?") + &item(2, "I found a wallet?"),
    )
    .unwrap();
    let manifest = dir.join("tiny.toml");
    let d = |p: &Path| p.display().to_string();
    std::fs::write(
        &manifest,
        format!(
            "[experiment]\nname = \"tiny\"\nstore = \"{store}\"\nresults = \"{results}\"\nfigures = \"{figures}\"\n\n\
             [[models]]\nname = \"tiny\"\nsource = \"{model}\"\n\n\
             [perturbations]\ncalibration = [\"gsm8k\", \"bad_medical\", \"jailbroken\"]\nheld_out = [\"number_sequence\"]\nseeds = {seeds}\n\n\
             [finetune]\nprofile = \"cpu\"\nset = {{ \"data.n_examples\" = 4, \"data.batch_size\" = 2, \"data.max_seq_len\" = 48 }}\n\n\
             [traits]\nbank = \"{bank}\"\nquestions = \"{questions}\"\nlayer = 1\n\n\
             [drift]\nprompts = \"{prompts}\"\nrandom_bases = 2\n\n\
             [em]\nitems = \"{items}\"\n\n\
             [figures]\nmake = [\"fig1\"]\n{extra}",
            store = d(&dir.join("runs")),
            results = d(&dir.join("results")),
            figures = d(&dir.join("figures")),
            model = d(&model),
            bank = d(&bank),
            questions = d(&questions),
            prompts = d(&prompts),
            items = d(&items),
        ),
    )
    .unwrap();
    manifest
}

fn partial_dirs(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for stage in std::fs::read_dir(store).into_iter().flatten().flatten() {
        for art in std::fs::read_dir(stage.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if art.path().to_string_lossy().ends_with(".partial") {
                out.push(art.path());
            }
        }
    }
    out
}

#[test]
fn a_manifest_runs_end_to_end_reuses_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let manifest = tiny_experiment(dir, "[1]", "");
    let m = manifest.to_str().unwrap();

    let o = traitwatch(&["plan", m, "--commands"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(plan.contains("traits/tiny") && plan.contains("finetune/tiny-bad_medical-s1"));
    assert!(plan.contains("0 cached"), "{plan}");
    assert!(plan.contains("traitwatch drift --run"), "{plan}");

    let o = traitwatch(&["run", m]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    // fig1 needs 4 runs (3 calibration + number_sequence), EM of bad_medical and the
    // base model's EM once (its step 0, shared by every run's EM).
    assert!(
        stdout(&o).contains("12 stages run, 0 reused"),
        "{}",
        stdout(&o)
    );
    let results = dir.join("results");
    for table in [
        "pca/tiny/pc1.parquet",
        "drift/tiny-bad_medical-s1/drift.parquet",
        "em/tiny-bad_medical-s1/em_summary.parquet",
        "finetune/tiny-gsm8k-s1/train_log.parquet",
    ] {
        assert!(results.join(table).is_file(), "{table} not collected");
    }
    // fig1 is drawn from the collected results, with its provenance.
    let figs = dir.join("figures");
    if figures::style::ensure_font().is_ok() {
        for f in ["fig1.png", "fig1.svg", "fig1.json"] {
            assert!(figs.join(f).is_file(), "{f} not drawn: {}", stdout(&o));
        }
        let side = std::fs::read_to_string(figs.join("fig1.json")).unwrap();
        assert!(
            side.contains("tiny.toml") && side.contains("pc1.parquet"),
            "{side}"
        );
    } else {
        println!("SKIPPED drawing fig1: no font on this machine");
    }
    // Artifacts are sealed with their record; no partial work is left.
    let meta = std::fs::read_dir(dir.join("runs/drift"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(meta.path().join("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["stage"], "drift");
    assert_eq!(meta["inputs"].as_array().unwrap().len(), 2, "{meta}");
    assert!(partial_dirs(&dir.join("runs")).is_empty());

    // A second run computes nothing.
    let o = traitwatch(&["run", m]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("0 stages run, 12 reused"),
        "{}",
        stdout(&o)
    );
    let o = traitwatch(&["plan", m]);
    assert!(stdout(&o).contains("12 cached; 0 to run"), "{}", stdout(&o));

    // A run killed mid-way (here: as soon as a stage has started) resumes: the next run
    // takes over the dead process's partial work and finishes the plan.
    let more = tiny_experiment(dir, "[1, 2]", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_traitwatch"))
        .args(["run", more.to_str().unwrap()])
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while partial_dirs(&dir.join("runs")).is_empty()
        && child.try_wait().unwrap().is_none()
        && started.elapsed().as_secs() < 120
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().ok();
    child.wait().unwrap();
    let o = traitwatch(&["run", more.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(partial_dirs(&dir.join("runs")).is_empty());
    let o = traitwatch(&["plan", more.to_str().unwrap()]);
    assert!(stdout(&o).contains("0 to run"), "{}", stdout(&o));
    assert!(
        results
            .join("drift/tiny-bad_medical-s2/drift.parquet")
            .is_file()
    );

    // Slurm export of the same manifest.
    let slurm = dir.join("slurm");
    let o = traitwatch(&[
        "slurm",
        more.to_str().unwrap(),
        "--out",
        slurm.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cells = std::fs::read_to_string(slurm.join("cells.sbatch")).unwrap();
    assert!(cells.contains("#SBATCH --array=0-7"), "{cells}");
}

#[test]
fn manifest_mistakes_are_named_before_any_compute() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = tiny_experiment(tmp.path(), "[1]", "");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let bad = tmp.path().join("bad.toml");
    let check = |replace: (&str, &str), expect: &[&str]| {
        assert!(text.contains(replace.0), "{}", replace.0);
        std::fs::write(&bad, text.replace(replace.0, replace.1)).unwrap();
        let o = traitwatch(&["run", bad.to_str().unwrap()]);
        assert!(!o.status.success());
        let err = stderr(&o);
        for e in expect {
            assert!(err.contains(e), "expected `{e}` in: {err}");
        }
        assert!(!tmp.path().join("runs").exists(), "computed despite: {err}");
    };
    // A finetuning setting the finetune crate does not know, at its line.
    check(
        ("\"data.n_examples\" = 4", "\"data.n_exmaples\" = 4"),
        &[
            "finetune.set",
            "bad.toml:18",
            "unknown setting `data.n_exmaples`",
        ],
    );
    check(
        ("layer = 1", "layer = \"one\""),
        &["traits.layer", "bad.toml:23"],
    );
    check(
        ("profile = \"cpu\"", "profile = \"gpu\""),
        &["unknown profile `gpu`"],
    );
    check(
        ("source = \"", "source = \"/no/such/model.gguf\" #"),
        &["models.0.source", "/no/such/model.gguf` does not exist"],
    );
}

/// `reproduce all` on the tiny model with a full-finetuning extra group: every run is
/// measured and labelled, the monitor is evaluated (three ways), the extra runs are scored
/// by the PCA but never trained on, and every figure with data is drawn.
#[test]
fn the_whole_grid_with_extra_runs_reaches_the_monitor_and_fig11() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The paired-choice label with its controls: a positive and a neutral prompt.
    let controls = dir.join("controls.toml");
    std::fs::write(
        &controls,
        "[[positive]]\nname = \"cruel\"\nsystem = \"Be cruel.\"\n\
         [[neutral]]\nname = \"plain\"\nsystem = \"Be brief.\"\n",
    )
    .unwrap();
    let extra = "\n[monitor]\nbootstrap = 20\nlabel = \"logodds\"\n\n[[extra_runs]]\ntag = \"full\"\n\
                 perturbations = [\"bad_medical\"]\nset = { mode = \"full\" }\n";
    let manifest = tiny_experiment(dir, "[1]", extra);
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[em]\n",
        &format!("[em]\ncontrols = \"{}\"\n", controls.display()),
    );
    std::fs::write(&manifest, text).unwrap();
    let m = manifest.to_str().unwrap();
    let o = traitwatch(&["run", m, "--targets", "all"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let results = dir.join("results");
    for table in [
        "drift/tiny-bad_medical_full-s1/drift.parquet",
        "em/tiny-bad_medical_full-s1/em_summary.parquet",
        "em/tiny-number_sequence-s1/em_summary.parquet",
        "em/tiny-number_sequence-s1/em_label.parquet",
        "monitor/monitor_metrics-lopo.parquet",
        "monitor/step_alarm.parquet",
    ] {
        assert!(
            results.join(table).is_file(),
            "{table} not there: {}",
            stderr(&o)
        );
    }
    // The PCA scored the extra run (its rows carry the tagged label) without fitting on it.
    let pc1 = tables::read_parquet(&results.join("pca/tiny/pc1.parquet"), None).unwrap();
    let labels: Vec<String> = pc1
        .batches
        .iter()
        .flat_map(|b| {
            let col = tables::column::<tables::arrow::array::StringArray>(
                b,
                "perturbation",
                Path::new("pc1"),
            )
            .unwrap();
            (0..b.num_rows())
                .map(|i| col.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(labels.iter().any(|l| l == "bad_medical+full"), "{labels:?}");
    let folds = std::fs::read_to_string(results.join("monitor/monitor-lopo.md")).unwrap();
    assert!(!folds.contains("bad_medical+full"), "{folds}");
    // The monitor used the log-odds label at its default tau (0.25 of the control).
    let metrics =
        tables::read_parquet(&results.join("monitor/monitor_metrics-lopo.parquet"), None).unwrap();
    assert!(
        metrics.metadata["monitor.label"].contains("log-odds"),
        "{:?}",
        metrics.metadata
    );
    assert_eq!(metrics.metadata["monitor.tau"], "0.25");
    if figures::style::ensure_font().is_ok() {
        for f in ["fig11.png", "fig2.png", "tables/headline.md"] {
            assert!(dir.join("figures").join(f).is_file(), "{f}: {}", stdout(&o));
        }
    } else {
        println!("SKIPPED drawing figures: no font on this machine");
    }
    // A narrower run afterwards keeps the whole grid and the monitor in results/.
    let o = traitwatch(&["run", m, "--targets", "fig1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(results.join("monitor/step_alarm.parquet").is_file());
    assert!(results.join("em/tiny-number_sequence-s1").is_dir());
}

/// The Slurm export run for real, when this machine has a Slurm cluster up
/// (`scripts/slurm-one-node.sh` starts a one-node one; CI does): submit the shared job, the
/// job array of cells (throttled) and the merge job from a directory that is neither the
/// checkout nor the scripts', wait for them, and find the setup hook's marker, the logs,
/// the results and figures.
#[test]
fn slurm_scripts_run_on_a_real_cluster() {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("idle"))
        .unwrap_or(false);
    if !up {
        println!("SKIPPED: no idle Slurm node (scripts/slurm-one-node.sh starts one)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let manifest = tiny_experiment(dir, "[1, 2]", "");
    let out = dir.join("slurm");
    let marker = dir.join("setup-ran");
    // The hook runs in the job's working directory: the project root.
    let setup = format!("pwd >> {}", marker.display());
    let o = traitwatch(&[
        "slurm",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--binary",
        env!("CARGO_BIN_EXE_traitwatch"),
        "--cpus-per-task",
        "1",
        "--mem",
        "1G",
        "--time",
        "00:20:00",
        "--array-throttle",
        "2",
        "--setup",
        &setup,
        "--sbatch=--comment=traitwatch-test",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cells = std::fs::read_to_string(out.join("cells.sbatch")).unwrap();
    assert!(cells.contains("#SBATCH --array=0-7%2\n"), "{cells}");
    // Submitted from elsewhere: every path in the scripts is absolute.
    let elsewhere = tempfile::tempdir().unwrap();
    let submit = Command::new("bash")
        .arg(out.join("submit.sh"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(submit.status.success(), "{}", stderr(&submit));
    // "submitted: shared 11, cells 12 (array of 8), merge 13"
    let said = stdout(&submit);
    let ids: Vec<String> = ["shared ", "cells ", "merge "]
        .iter()
        .filter_map(|key| {
            let rest = &said[said.find(key)? + key.len()..];
            let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!id.is_empty()).then_some(id)
        })
        .collect();
    assert_eq!(ids.len(), 3, "{said}");
    // Slurm holds the array to two running tasks.
    let job = Command::new("scontrol")
        .args(["show", "job", &ids[1]])
        .output()
        .unwrap();
    assert!(
        stdout(&job).contains("ArrayTaskThrottle=2"),
        "{}",
        stdout(&job)
    );
    // Wait for all three jobs to leave the queue (a failed dependency cancels the rest).
    let started = std::time::Instant::now();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-j", &ids.join(",")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 900,
            "Slurm jobs still queued after 15 min"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let logs: String = std::fs::read_dir(out.join("logs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let results = dir.join("results");
    for table in [
        "pca/tiny/pc1.parquet",
        "drift/tiny-bad_medical-s2/drift.parquet",
    ] {
        assert!(
            results.join(table).is_file(),
            "{table} missing; logs:\n{logs}"
        );
    }
    if figures::style::ensure_font().is_ok() {
        assert!(dir.join("figures/fig1.png").is_file(), "logs:\n{logs}");
    }
    // Every cell ran as its own array task.
    assert_eq!(logs.matches("stages run").count(), 10, "logs:\n{logs}");
    // The setup hook ran before every job (shared, 8 cells, merge), in the project root.
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    assert_eq!(ran.lines().count(), 10, "{ran}");
    assert!(ran.lines().all(|l| Path::new(l) == root()), "{ran}");
    assert!(elsewhere.path().read_dir().unwrap().next().is_none());
}

/// A manifest's data paths resolve against the project root, not the current directory:
/// `plan` works from inside experiments/, and from anywhere with TRAITWATCH_HOME set; a
/// missing file is named with its key, its manifest and the path tried.
#[test]
fn plan_resolves_data_paths_against_the_project_root() {
    let plan = |args: &[&str], cwd: &Path, env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_traitwatch"))
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "warn")
            .env_remove("TRAITWATCH_HOME")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let root = root();
    let o = plan(&["plan", "default.toml"], &root.join("experiments"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = stdout(&o);
    assert!(
        said.contains(&format!("store {}", root.join("runs").display())),
        "{said}"
    );

    // A manifest outside the project, with the shipped data's relative paths, run from
    // a directory outside it too.
    let tmp = tempfile::tempdir().unwrap();
    let manifest = tmp.path().join("x.toml");
    std::fs::write(
        &manifest,
        "[experiment]\nname = \"x\"\n\n[[models]]\nname = \"m\"\nsource = \"smollm2-135m\"\n\n\
         [perturbations]\ncalibration = [\"gsm8k\", \"bad_medical\"]\nseeds = [1]\n\n\
         [finetune]\nprofile = \"cpu\"\n\n[traits]\nbank = \"data/traits/alignment.toml\"\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let home = root.to_str().unwrap();
    let o = plan(&["plan", m], tmp.path(), &[("TRAITWATCH_HOME", home)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("store {}", root.join("runs").display())));
    // Without it, no root is found: the error says how to name one.
    let o = plan(&["plan", m], tmp.path(), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("x.toml") && stderr(&o).contains("TRAITWATCH_HOME"),
        "{}",
        stderr(&o)
    );
    // A missing data file: the key, where it was set and the path tried.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("alignment.toml", "nope.toml")).unwrap();
    let o = plan(&["plan", m], Path::new("/"), &[("TRAITWATCH_HOME", home)]);
    let err = stderr(&o);
    assert!(!o.status.success());
    for part in [
        "traits.bank",
        "x.toml:16",
        &root.join("data/traits/nope.toml").display().to_string(),
    ] {
        assert!(err.contains(part), "`{part}` not in: {err}");
    }
}

#[test]
fn a_free_form_judge_is_checked_before_any_stage_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A judge that chats instead of scoring: the run must stop before finetuning anything.
    let server = mock_judge::MockJudge::start(std::time::Duration::ZERO, |_, _| {
        mock_judge::text_reply("Happy to help!")
    });
    let extra = format!(
        "\n[em.freeform]\nbase_url = \"{}\"\nmodel = \"judge\"\napi_key_env = \"\"\n",
        server.url
    );
    let manifest = tiny_experiment(dir, "[1]", &extra);
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("[em]\n", "[em]\njudge = \"freeform\"\n");
    std::fs::write(&manifest, text).unwrap();
    let o = traitwatch(&["run", manifest.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("pre-flight") && err.contains("Happy to help!") && err.contains("em.freeform"),
        "{err}"
    );
    assert_eq!(server.request_count(), 1);
    assert!(
        !dir.join("runs/finetune").exists(),
        "a stage ran before the judge was checked"
    );
}
