#![allow(clippy::unwrap_used)]
//! The generated scripts, on a small manifest planned against the checkout's data.

use super::*;
use crate::Target;

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A two-cell manifest (two calibration perturbations, one seed) with `extra` appended.
fn loaded(dir: &Path, extra: &str) -> Result<Loaded> {
    let path = dir.join("m.toml");
    let text = format!(
        "[experiment]\nname = \"t\"\n\n[[models]]\nname = \"m\"\nsource = \"smollm2-135m\"\n\n\
         [perturbations]\ncalibration = [\"gsm8k\", \"bad_medical\"]\nseeds = [1]\n\n\
         [finetune]\nprofile = \"cpu\"\n\n[figures]\nmake = [\"fig4\"]\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    crate::load_in(&path, checkout())
}

fn export(loaded: &Loaded, request: ExportRequest) -> Result<Vec<(String, String)>> {
    let plan = Plan::build(loaded, &[Target::Fig(4)]).unwrap();
    let opts = SlurmOptions::resolve(loaded, request)?;
    Ok(scripts(&plan, "t", &opts))
}

fn file<'a>(scripts: &'a [(String, String)], name: &str) -> &'a str {
    &scripts.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn every_path_is_absolute_and_jobs_start_in_the_project_root() {
    let tmp = tempfile::tempdir().unwrap();
    let l = loaded(tmp.path(), "").unwrap();
    let request = ExportRequest {
        cwd: PathBuf::from("/somewhere/else"),
        ..Default::default()
    };
    let s = export(&l, request).unwrap();
    let root = checkout();
    let r = root.display();
    let cells = file(&s, "cells.sbatch");
    assert!(cells.contains(&format!("#SBATCH --chdir={r}\n")), "{cells}");
    assert!(
        cells.contains(&format!("#SBATCH --output={r}/slurm/t/logs/%x-%A_%a.out\n")),
        "{cells}"
    );
    assert!(cells.contains("#SBATCH --array=0-1\n"), "{cells}");
    let manifest = std::path::absolute(tmp.path().join("m.toml")).unwrap();
    assert!(
        cells.contains(&format!(
            "{r}/target/release/traitwatch run {} --cell \"$SLURM_ARRAY_TASK_ID\"",
            manifest.display()
        )),
        "{cells}"
    );
    assert!(cells.contains(&format!("export TRAITWATCH_HOME={r}\n")));
    assert!(cells.contains(&format!(
        "store (on a file system every node sees): {r}/runs"
    )));
    // No GPU on the CPU backend; defaults filled in.
    assert!(!cells.contains("--gres") && cells.contains("--mem=64G"));
    let shared = file(&s, "shared.sbatch");
    assert!(shared.contains(&format!("--output={r}/slurm/t/logs/%x-%j.out")));
    let submit = file(&s, "submit.sh");
    assert!(
        submit.contains(&format!("mkdir -p {r}/slurm/t/logs\n")),
        "{submit}"
    );
    assert!(submit.contains(&format!("sbatch --parsable {r}/slurm/t/shared.sbatch")));
    assert!(!submit.contains("$0"), "{submit}");
}

#[test]
fn flags_override_the_manifest_table() {
    let tmp = tempfile::tempdir().unwrap();
    let table = "\n[slurm]\naccount = \"lab\"\nqos = \"low\"\npartition = \"gpu\"\n\
                 array_throttle = 4\nsbatch = [\"--constraint=a100\", \"#SBATCH --exclusive\"]\n\
                 setup = [\"module load cuda/12\", \"source venv/bin/activate\"]\n\
                 binary = \"bin/tw\"\nmem = \"32G\"\n";
    let l = loaded(tmp.path(), table).unwrap();
    let r = checkout().display().to_string();
    // The manifest alone.
    let s = export(
        &l,
        ExportRequest {
            backend: Some("cuda".into()),
            cwd: "/cwd".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let cells = file(&s, "cells.sbatch");
    for line in [
        "#SBATCH --account=lab\n",
        "#SBATCH --qos=low\n",
        "#SBATCH --partition=gpu\n",
        "#SBATCH --array=0-1%4\n",
        "#SBATCH --constraint=a100\n",
        "#SBATCH --exclusive\n",
        "#SBATCH --gres=gpu:1\n",
        "#SBATCH --mem=32G\n",
        "set -eo pipefail\n# setup ([slurm] setup / --setup)\nmodule load cuda/12\nsource venv/bin/activate\nset -u\n",
    ] {
        assert!(cells.contains(line), "`{line}` not in:\n{cells}");
    }
    assert!(
        cells.contains(&format!("{r}/bin/tw --backend cuda run")),
        "{cells}"
    );
    // The merge job only draws: no GPU.
    assert!(!file(&s, "merge.sbatch").contains("--gres"));

    // Flags win; lists given as flags replace the manifest's; a flag's binary path is
    // relative to the current directory.
    let flags = SlurmSpec {
        account: Some("other".into()),
        array_throttle: Some(1),
        setup: vec!["echo hi".into()],
        binary: Some("build/tw".into()),
        ..Default::default()
    };
    let s = export(
        &l,
        ExportRequest {
            flags,
            cwd: "/cwd".into(),
            out: Some("scripts".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let cells = file(&s, "cells.sbatch");
    assert!(
        cells.contains("#SBATCH --account=other\n#SBATCH --qos=low\n"),
        "{cells}"
    );
    assert!(cells.contains("#SBATCH --array=0-1%1\n"));
    assert!(cells.contains("echo hi\n") && !cells.contains("module load"));
    assert!(cells.contains("\n/cwd/build/tw run "), "{cells}");
    assert!(cells.contains("--output=/cwd/scripts/logs/"), "{cells}");
}

#[test]
fn bad_settings_name_their_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |table: &str| loaded(tmp.path(), table).unwrap_err().to_string();
    let e = err("\n[slurm]\naccount = \"lab\"\nthrottle = 2\n");
    assert!(
        e.contains("slurm.throttle") && e.contains("m.toml:20"),
        "{e}"
    );
    let e = err("\n[slurm]\narray_throttle = 0\n");
    assert!(
        e.contains("slurm.array_throttle") && e.contains("at least 1"),
        "{e}"
    );
    assert!(e.contains("m.toml:19"), "{e}");
    let e = err("\n[slurm]\nsbatch = [\"--array=0-3\"]\n");
    assert!(
        e.contains("slurm.sbatch.0") && e.contains("set --array themselves"),
        "{e}"
    );
    let e = err("\n[slurm]\nsbatch = [\"constraint=a100\"]\n");
    assert!(e.contains("one sbatch option per entry"), "{e}");
    let e = err("\n[slurm]\nsetup = [\"\"]\n");
    assert!(e.contains("slurm.setup.0"), "{e}");

    // The same checks on flags name the flag.
    let l = loaded(tmp.path(), "").unwrap();
    let bad = |flags: SlurmSpec| {
        export(
            &l,
            ExportRequest {
                flags,
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string()
    };
    let e = bad(SlurmSpec {
        array_throttle: Some(0),
        ..Default::default()
    });
    assert!(
        e.contains("--array-throttle") && e.contains("at least 1"),
        "{e}"
    );
    let e = bad(SlurmSpec {
        sbatch: vec!["-o /tmp/x".into()],
        ..Default::default()
    });
    assert!(e.contains("--sbatch") && e.contains("--output"), "{e}");
}

#[test]
fn paths_with_spaces_are_quoted() {
    assert_eq!(shell_word(Path::new("/a b/c")), "'/a b/c'");
    assert_eq!(sbatch_word(Path::new("/a b/c")), "\"/a b/c\"");
    assert_eq!(sbatch_word(Path::new("/a/c")), "/a/c");
}
