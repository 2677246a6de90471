//! `repro` end to end, as a user runs it: a tiny synthetic training run, results.json
//! against the documented schema, stop-and-resume equal to an uninterrupted run, and bad
//! input answered with a message and a non-zero exit.
mod common;
use common::{repro, repro_env, stderr, tmp};
use std::path::Path;
use std::process::Output;

const TINY: &[&str] = &[
    "--dataset",
    "synthetic-lt",
    "--classes",
    "4",
    "--synthetic-max",
    "40",
    "--imb",
    "10",
    "--arch",
    "resnet8",
    "--epochs",
    "2",
    "--batch",
    "32",
    "--schedule",
    "cosine",
    "--quiet",
    "--threads",
    "2",
];

fn train(out: &Path, extra: &[&str]) -> Output {
    train_env(out, extra, &[])
}

fn train_env(out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec!["train"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    repro_env(&args, env)
}

fn results(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap()
}

#[test]
fn train_writes_results_and_resume_matches() {
    let a = tmp("a");
    let o = train(&a, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = results(&a);
    for key in [
        "dataset",
        "imb",
        "arch",
        "loss",
        "counts",
        "mixup",
        "epochs",
        "seed",
        "top1_final",
        "top1_best",
        "best_epoch",
        "many",
        "medium",
        "few",
        "ece",
        "per_class_acc",
        "class_counts",
        "wall_s",
        "img_per_s",
    ] {
        assert!(r.get(key).is_some(), "results.json lacks {key}: {r}");
    }
    assert_eq!(r["dataset"], "synthetic-lt");
    assert_eq!(r["per_class_acc"].as_array().unwrap().len(), 4);
    assert_eq!(r["class_counts"].as_array().unwrap().len(), 4);
    let top1 = r["top1_final"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&top1));
    assert!(r["img_per_s"].as_f64().unwrap() > 0.0);
    for f in ["config.json", "log.jsonl", "checkpoint.bin"] {
        assert!(a.join(f).exists(), "{f} missing");
    }

    let b = tmp("b");
    assert!(train(&b, &["--stop-after", "1"]).status.success());
    assert!(!b.join("results.json").exists());
    let o = train(&b, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rb = results(&b);
    for key in [
        "top1_final",
        "top1_best",
        "ece",
        "per_class_acc",
        "many",
        "medium",
        "few",
    ] {
        assert_eq!(r[key], rb[key], "{key} differs after resume");
    }

    // Never overwrite without --force.
    let o = train(&a, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn bad_input_exits_non_zero_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["train", "--loss", "hinge"], "unknown loss"),
        (
            &["train", "--dataset", "cifar10-lt", "--data", "/no/such/dir"],
            "/no/such/dir",
        ),
        (&["train", "--dataset", "cifar10-lt"], "--data"),
        (&["train", "--dataset", "mnist"], "unknown dataset"),
        (&["train", "--lr=-1", "--dataset", "synthetic-lt"], "--lr"),
        (
            &["train", "--dataset", "synthetic-lt", "--epochs", "0"],
            "--epochs",
        ),
        (
            &[
                "train",
                "--dataset",
                "synthetic-lt",
                "--batch",
                "100000",
                "--quiet",
            ],
            "--batch",
        ),
        (
            &["train", "--dataset", "synthetic-lt", "--device", "cuda"],
            "cuda",
        ),
        (&["preset", "no-such-preset"], "unknown preset"),
        (
            &[
                "compare",
                "--losses",
                "ce,arb:sometimes",
                "--dataset",
                "synthetic-lt",
            ],
            "counts",
        ),
    ];
    for (args, needle) in cases {
        let o = repro(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}

#[test]
fn cifar_binary_errors_name_the_file() {
    let dir = tmp("cifar");
    let bin = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("data_batch_1.bin"), vec![0u8; 100]).unwrap();
    let o = repro(&[
        "train",
        "--dataset",
        "cifar10-lt",
        "--data",
        bin.to_str().unwrap(),
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("data_batch_1.bin"), "{err}");
    assert!(
        !dir.join("run").exists(),
        "a failed run must not leave a run folder"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn presets_list_every_reference_config() {
    let o = repro(&["presets"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for name in [
        "cifar10-lt-if100-arb",
        "cifar100-lt-if10-arb-ugcc",
        "cifar10-lt-if50-arb-mixup",
        "imagenet-lt-arb",
        "inat2018-arb",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert_eq!(text.lines().count(), 51);
}

/// `ARBOR_SIMD` pins the kernels' level: a run records it (and the GEMM's instruction set)
/// in `config.json` and `results.json`, and a level that does not exist is refused
/// before anything is written.
#[test]
fn simd_level_is_recorded_and_a_bad_one_refused() {
    let run = |out: &Path, level: &str| train_env(out, &[], &[("ARBOR_SIMD", level)]);
    let out = tmp("simd");
    let o = run(&out, "portable");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(results(&out)["simd"], "portable");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["simd"], "portable");
    // The GEMM's own instruction set beside it (matrixmultiply picks its own).
    let gemm = arbor::engine::cpu::matmul::gemm_isa();
    assert_eq!(results(&out)["gemm"], gemm);
    assert_eq!(config["gemm"], gemm);

    let bad = tmp("simd-bad");
    let o = run(&bad, "sse9");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ARBOR_SIMD"), "{}", stderr(&o));
    assert!(!bad.exists(), "nothing is written for a refused level");
    let _ = std::fs::remove_dir_all(&out);
}
