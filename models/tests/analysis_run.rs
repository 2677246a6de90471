//! `--analyze` inside the trainer: the matrix a run writes against the naive per-pair sum
//! on the same batch, exact resume of `analysis.jsonl`, and no effect on the training.
use arbor_engine::ops::loss::Target;
use arbor_engine::{DType, Tensor};
use arbor_models::analysis::{read, AnalysisRecord, ANALYSIS_FILE};
use arbor_models::config::{DatasetKind, RunConfig};
use arbor_models::data::{Loader, LoaderConfig, SampleSource};
use arbor_models::resnet::{Arch, ResNet};
use arbor_models::train::report::EpochLog;
use arbor_models::train::source::prepare;
use arbor_models::train::{criterion_for, run, Outcome, RunOptions, LOG_FILE};
use std::path::{Path, PathBuf};

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
        analyze: true,
        analyze_every: 1,
        ..RunConfig::default()
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arbor-analysis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

fn records(d: &Path) -> Vec<AnalysisRecord> {
    read(&d.join(ANALYSIS_FILE)).unwrap()
}

/// The record without its timings (which differ between any two runs).
fn untimed(mut r: AnalysisRecord) -> AnalysisRecord {
    r.matrix_s = 0.0;
    r.collapse_s = 0.0;
    r
}

#[test]
fn the_written_matrix_is_the_per_pair_norm_of_the_first_batch() {
    let mut cfg = tiny();
    cfg.epochs = 1;
    // One batch per epoch: the epoch mean is that batch's matrix, at the initial weights.
    let data = prepare(&cfg).unwrap();
    cfg.batch = data.train.len();
    let out = dir("fixed-batch");
    assert!(matches!(
        run(&cfg, &out, &quiet()).unwrap(),
        Outcome::Finished(_)
    ));
    let rec = records(&out).pop().unwrap();

    let model = ResNet::new(cfg.arch, data.num_classes, DType::F32, cfg.seed).unwrap();
    let mut loader =
        Loader::new(data.train.clone(), LoaderConfig::train(cfg.batch, cfg.seed)).unwrap();
    let batch = loader.epoch().next().unwrap().unwrap();
    let labels: Vec<usize> = batch.labels.iter().map(|&l| l as usize).collect();
    let x = Tensor::from_vec(batch.images, batch.shape.to_vec()).unwrap();
    let h = model.features(&x).unwrap();
    let z = model.classifier.forward(&h).unwrap();
    let criterion = criterion_for(&cfg, &data.class_counts).unwrap();
    let (_, g) = criterion
        .loss_with_grad(&z, &Target::Hard(labels.clone()), 1)
        .unwrap();
    let (h, g) = (h.to_vec_f64().unwrap(), g.to_vec_f64().unwrap());
    let (c, d) = (data.num_classes, h.len() / labels.len());
    for i in 0..c {
        for j in 0..c {
            let mut v = vec![0.0; d];
            for (b, _) in labels.iter().enumerate().filter(|(_, &y)| y == j) {
                for t in 0..d {
                    v[t] += g[b * c + i] * h[b * d + t];
                }
            }
            let want = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let got = rec.matrix[i][j];
            assert!(
                (got - want).abs() <= 1e-4 * (1.0 + want),
                "M[{i}][{j}] = {got}, per-pair sum {want}"
            );
        }
        assert_eq!(rec.classes[i].attraction, rec.matrix[i][i]);
        assert_eq!(rec.classes[i].train_count, data.class_counts[i]);
    }
    assert!(rec.matrix.iter().flatten().any(|&v| v > 0.0));
    let _ = std::fs::remove_dir_all(out);
}

fn log_epochs(d: &Path) -> Vec<usize> {
    std::fs::read_to_string(d.join(LOG_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<EpochLog>(l).unwrap().epoch)
        .collect()
}

#[test]
fn a_run_killed_after_the_append_resumes_without_duplicates_and_exactly() {
    let cfg = tiny();
    let a = dir("straight");
    run(&cfg, &a, &quiet()).unwrap();
    let straight = records(&a);
    assert_eq!(
        straight.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let b = dir("killed");
    run(
        &cfg,
        &b,
        &RunOptions {
            stop_after: Some(1),
            ..quiet()
        },
    )
    .unwrap();
    // The kill: epoch 2's lines were appended, its checkpoint never saved.
    for file in [ANALYSIS_FILE, LOG_FILE] {
        let line = std::fs::read_to_string(a.join(file))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_string();
        let mut text = std::fs::read_to_string(b.join(file)).unwrap();
        text += &(line + "\n");
        std::fs::write(b.join(file), text).unwrap();
    }
    run(
        &cfg,
        &b,
        &RunOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(log_epochs(&b), [1, 2, 3]);
    let resumed = records(&b);
    assert_eq!(
        resumed.into_iter().map(untimed).collect::<Vec<_>>(),
        straight.into_iter().map(untimed).collect::<Vec<_>>()
    );

    // The analysis only observes: the same run without it trains identically.
    let c = dir("plain");
    run(
        &RunConfig {
            analyze: false,
            ..cfg
        },
        &c,
        &quiet(),
    )
    .unwrap();
    assert!(!c.join(ANALYSIS_FILE).exists());
    let losses = |d: &Path| -> Vec<f64> {
        std::fs::read_to_string(d.join(LOG_FILE))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<EpochLog>(l).unwrap().train_loss)
            .collect()
    };
    assert_eq!(losses(&a), losses(&c));
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}
