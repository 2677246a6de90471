//! The trainer end to end on tiny synthetic data: results, determinism, exact resume,
//! and refusing to overwrite a run.
use arbor_models::config::{CountsMode, DatasetKind, RunConfig};
use arbor_models::resnet::Arch;
use arbor_models::train::{run, Outcome, RunOptions, RESULTS_FILE};
use std::path::PathBuf;

fn tiny() -> RunConfig {
    RunConfig {
        dataset: DatasetKind::SyntheticLt,
        arch: Arch::ResNet8,
        epochs: 3,
        batch: 32,
        synthetic_max: 40,
        num_classes_synthetic: 4,
        imb: 10,
        schedule: "cosine".into(),
        counts: CountsMode::Batch,
        diagnostic: true,
        ..RunConfig::default()
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arbor-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

fn finished(o: Outcome) -> arbor_models::train::report::RunResult {
    match o {
        Outcome::Finished(r) => *r,
        other => panic!("run did not finish: {other:?}"),
    }
}

#[test]
fn resumed_run_matches_uninterrupted_run() {
    let cfg = tiny();
    let a = dir("straight");
    let straight = finished(run(&cfg, &a, &quiet()).unwrap());
    assert!(a.join(RESULTS_FILE).exists());
    assert_eq!(straight.class_counts.len(), 4);
    assert_eq!(straight.per_class_acc.len(), 4);

    let b = dir("resumed");
    let stopped = run(
        &cfg,
        &b,
        &RunOptions {
            stop_after: Some(1),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(stopped, Outcome::Stopped { epoch: 1 });
    assert!(!b.join(RESULTS_FILE).exists());
    let resumed = finished(
        run(
            &cfg,
            &b,
            &RunOptions {
                resume: true,
                ..quiet()
            },
        )
        .unwrap(),
    );
    assert_eq!(straight.top1_final, resumed.top1_final);
    assert_eq!(straight.per_class_acc, resumed.per_class_acc);
    assert_eq!(straight.ece, resumed.ece);
    let log = std::fs::read_to_string(b.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
    assert!(log.contains("\"balance\":[{"), "the diagnostic is logged");

    // An existing run is never overwritten without --force / --resume.
    let err = run(&cfg, &a, &quiet()).unwrap_err().to_string();
    assert!(err.contains("--resume") && err.contains("--force"), "{err}");
    finished(
        run(
            &cfg,
            &a,
            &RunOptions {
                force: true,
                ..quiet()
            },
        )
        .unwrap(),
    );
    // Resuming with different flags is refused.
    let mut other = cfg.clone();
    other.lr = 0.05;
    assert!(run(
        &other,
        &b,
        &RunOptions {
            resume: true,
            ..quiet()
        }
    )
    .is_err());
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn bad_configurations_are_refused_with_the_flag_named() {
    let out = dir("bad");
    let mut c = tiny();
    c.batch = 10_000;
    let e = run(&c, &out, &quiet()).unwrap_err().to_string();
    assert!(e.contains("--batch"), "{e}");
    let mut c = tiny();
    c.lr = -1.0;
    assert!(run(&c, &out, &quiet())
        .unwrap_err()
        .to_string()
        .contains("--lr"));
    let mut c = tiny();
    c.loss = "hinge".into();
    let _ = std::fs::remove_dir_all(&out);
    assert!(run(&c, &out, &quiet())
        .unwrap_err()
        .to_string()
        .contains("unknown loss"));
    let mut c = tiny();
    c.dataset = DatasetKind::Cifar10Lt;
    c.data = Some("/nonexistent/cifar".into());
    let _ = std::fs::remove_dir_all(&out);
    assert!(run(&c, &out, &quiet())
        .unwrap_err()
        .to_string()
        .contains("/nonexistent/cifar"));
    let mut c = tiny();
    c.device = "cuda".into();
    assert!(run(&c, &out, &quiet())
        .unwrap_err()
        .to_string()
        .contains("cuda"));
    let _ = std::fs::remove_dir_all(out);
}
