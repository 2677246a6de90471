//! Weights through the trainer: `best.safetensors` is the best epoch's model, `export`
//! writes the final one, `--init-from` starts from a file (re-initialising a classifier of
//! another class count) and `--freeze-backbone` really freezes: no gradient, not stepped,
//! batch-norm statistics unchanged.
use arbor_engine::ops::loss::{Reduction, Target};
use arbor_engine::optim::Sgd;
use arbor_engine::{DType, Tensor};
use arbor_models::config::{DatasetKind, RunConfig};
use arbor_models::loss::{Criterion, LossKind};
use arbor_models::predict::{run_eval, EvalJob};
use arbor_models::resnet::{Arch, ResNet};
use arbor_models::train::checkpoint::Checkpoint;
use arbor_models::train::hooks::BEST_FILE;
use arbor_models::train::{run, Outcome, RunOptions, CHECKPOINT_FILE};
use arbor_models::weights::export::{export_run, Which};
use arbor_models::weights::{self, model_tensors, HostTensor};
use std::path::{Path, PathBuf};

fn tiny(classes: usize) -> RunConfig {
    RunConfig {
        dataset: DatasetKind::SyntheticLt,
        arch: Arch::ResNet8,
        epochs: 3,
        batch: 32,
        synthetic_max: 40,
        num_classes_synthetic: classes,
        imb: 10,
        schedule: "cosine".into(),
        ..RunConfig::default()
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arbor-ft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train(cfg: &RunConfig, out: &Path) -> arbor_models::train::report::RunResult {
    let opts = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    match run(cfg, out, &opts).unwrap() {
        Outcome::Finished(r) => *r,
        other => panic!("{other:?}"),
    }
}

fn checkpoint_tensors(run: &Path) -> Vec<HostTensor> {
    let ck = Checkpoint::load(&run.join(CHECKPOINT_FILE)).unwrap();
    ck.tensors
        .into_iter()
        .map(|(name, dims, values)| HostTensor { name, dims, values })
        .collect()
}

fn eval(cfg: &RunConfig, weights: &Path, out: &Path) -> f64 {
    let job = EvalJob {
        weights: weights.to_path_buf(),
        arch: None,
        config: cfg.clone(),
        out: out.to_path_buf(),
        save_inputs: None,
    };
    run_eval(&job).unwrap().0.metrics.top1
}

#[test]
fn best_and_final_weights_evaluate_to_the_runs_figures() {
    let a = dir("best");
    let cfg = tiny(4);
    let r = train(&cfg, &a);
    let best = weights::read(&a.join(BEST_FILE)).unwrap();
    assert_eq!(best.metadata["epoch"], r.best_epoch.to_string());
    assert_eq!(best.metadata["which"], "best");
    assert_eq!(
        eval(&cfg, &a.join(BEST_FILE), &a.join("eval-best")),
        r.top1_best
    );

    let out = a.join("model.safetensors");
    assert_eq!(export_run(&a, Which::Final, &out).unwrap(), Some(3));
    assert_eq!(
        weights::read(&out).unwrap().tensors.len(),
        checkpoint_tensors(&a).len()
    );
    assert_eq!(eval(&cfg, &out, &a.join("eval-final")), r.top1_final);
    let csv = std::fs::read_to_string(a.join("eval-final/predictions.csv")).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("index,label,predicted,confidence,top5")
    );
    assert_eq!(csv.lines().count(), 1 + 4 * 100);
    let _ = std::fs::remove_dir_all(&a);
}

#[test]
fn init_from_with_a_frozen_backbone_changes_only_the_classifier() {
    let a = dir("src");
    train(&tiny(4), &a);
    let file = a.join("model.safetensors");
    export_run(&a, Which::Final, &file).unwrap();
    let source = weights::read(&file).unwrap().tensors;

    // Six classes where the file has four: the classifier is re-initialised.
    let b = dir("frozen");
    let cfg = RunConfig {
        init_from: Some(file.clone()),
        freeze_backbone: true,
        epochs: 2,
        ..tiny(6)
    };
    train(&cfg, &b);
    let after = checkpoint_tensors(&b);
    assert_eq!(after.len(), source.len());
    for t in &after {
        let s = source.iter().find(|s| s.name == t.name).unwrap();
        if t.name.starts_with("fc.") {
            assert_eq!(t.dims[0], 6, "{}", t.name);
        } else {
            assert_eq!(t, s, "{} changed under a frozen backbone", t.name);
        }
    }

    // Not frozen: the backbone trains from the file's weights.
    let c = dir("thawed");
    train(
        &RunConfig {
            freeze_backbone: false,
            ..cfg.clone()
        },
        &c,
    );
    let moved = checkpoint_tensors(&c)
        .into_iter()
        .filter(|t| !t.name.starts_with("fc."))
        .filter(|t| source.iter().find(|s| s.name == t.name) != Some(t))
        .count();
    assert!(moved > 0);
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn freezing_without_init_from_and_a_bad_init_file_are_refused_before_any_output() {
    let out = dir("refused");
    let frozen = RunConfig {
        freeze_backbone: true,
        ..tiny(4)
    };
    let e = run(&frozen, &out, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--freeze-backbone needs --init-from"), "{e}");
    let garbage = std::env::temp_dir().join(format!("arbor-ft-garbage-{}", std::process::id()));
    std::fs::write(&garbage, b"not weights").unwrap();
    let bad = RunConfig {
        init_from: Some(garbage.clone()),
        ..tiny(4)
    };
    let e = run(&bad, &out, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("arbor-ft-garbage") && e.contains("not a readable safetensors"),
        "{e}"
    );
    assert!(!out.exists(), "the output folder was created");
    let _ = std::fs::remove_file(garbage);
}

/// One step by hand: the frozen backbone gets no gradient and the optimiser holds only the
/// head, so only the head moves; batch norm in the backbone keeps its statistics.
#[test]
fn a_frozen_step_moves_only_the_head() {
    for arch in [Arch::ResNet8, Arch::ResNet50Places] {
        let mut m = ResNet::new(arch, 3, DType::F32, 1).unwrap();
        m.freeze_backbone();
        let head = m.head_prefixes();
        let in_head = |n: &str| head.iter().any(|p| n.starts_with(p.as_str()));
        let trainable = m.trainable_parameters();
        let expected = m.named().0.iter().filter(|n| in_head(&n.name)).count();
        assert_eq!(trainable.len(), expected, "{arch}");
        let before = model_tensors(&m).unwrap();
        let mut sgd = Sgd::new(trainable, 0.1, 0.9, 5e-4).unwrap();
        let x = Tensor::from_vec(
            (0..2 * 3 * 32 * 32)
                .map(|i| ((i % 17) as f32 - 8.0) / 4.0)
                .collect(),
            vec![2, 3, 32, 32],
        )
        .unwrap();
        let crit = Criterion::new(
            "ce".parse::<LossKind>().unwrap(),
            Reduction::Mean,
            &[1.0; 3],
        )
        .unwrap();
        let loss = crit
            .loss(&m.forward(&x).unwrap(), &Target::Hard(vec![0, 2]), 1)
            .unwrap();
        sgd.zero_grad();
        loss.backward().unwrap();
        for n in m.named().0 {
            assert_eq!(
                n.tensor.grad().is_some(),
                in_head(&n.name),
                "{arch} {}",
                n.name
            );
        }
        sgd.step().unwrap();
        for (t, was) in model_tensors(&m).unwrap().iter().zip(&before) {
            if in_head(&t.name) && !t.name.contains(".bn") {
                assert_ne!(t.values, was.values, "{arch} {} did not train", t.name);
            } else if !in_head(&t.name) {
                assert_eq!(t, was, "{arch} {} changed", t.name);
            }
        }
    }
}
