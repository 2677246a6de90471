//! The fused loss, CPU vs GPU: every loss by name, hard, mixup and soft targets, ARB's
//! batch and global counts, with and without the clamp, every reduction, the saved
//! per-row gradient, rows short enough for a warp and long enough for a block, and the
//! error for a non-finite logit.
use crate::{grad, input, Outputs};
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{CountMode, Criterion, LossKind, Reduction, Target};
use arbor_engine::{DType, Device, Result, Tensor};

const ROWS: usize = 12;

/// Training-set counts with a long tail, all positive.
fn train_counts(classes: usize) -> Vec<f64> {
    (0..classes)
        .map(|j| (500.0 * 0.01f64.powf(j as f64 / classes as f64)).ceil())
        .collect()
}

fn labels(seed: u64, classes: usize) -> Vec<usize> {
    let mut rng = SplitMix::new(seed);
    (0..ROWS)
        .map(|_| rng.next_u64() as usize % classes)
        .collect()
}

/// Probability rows (every class gets mass, so they suit global counts).
fn soft(dev: Device, dt: DType, classes: usize, seed: u64) -> Result<Tensor> {
    let raw = input(Device::Cpu, DType::F64, &[ROWS, classes], seed, 0.0, 1.0);
    let rows = raw.div(&raw.sum(&[1], true)?)?;
    rows.to_dtype(dt)?.to_device(dev)
}

/// The kinds under test: every name with its defaults, plus variants the names do not
/// reach (focal gamma 2, smoothing, ARB with global counts or without the clamp).
fn kinds() -> Vec<(String, LossKind)> {
    let mut all: Vec<(String, LossKind)> = LossKind::NAMES
        .iter()
        .map(|n| (n.to_string(), n.parse().expect("a known name")))
        .collect();
    all.push(("focal gamma 2".into(), LossKind::Focal { gamma: 2.0 }));
    all.push((
        "ce smoothing 0.1".into(),
        LossKind::CrossEntropy {
            label_smoothing: 0.1,
        },
    ));
    for (counts, clamp) in [(CountMode::Global, true), (CountMode::Batch, false)] {
        let name = format!("arb {counts:?} clamp {clamp}");
        all.push((name, LossKind::Arb { counts, clamp }));
    }
    all
}

/// Whether the kind takes soft targets (batch counts need labels; focal and margins need
/// one target class).
fn takes_soft(kind: &LossKind) -> bool {
    match kind {
        LossKind::Arb { counts, .. } => *counts == CountMode::Global,
        LossKind::CrossEntropy { label_smoothing } => *label_smoothing == 0.0,
        LossKind::ClassBalanced { .. } | LossKind::BalancedSoftmax { .. } => true,
        LossKind::Focal { .. } | LossKind::Ldam { .. } => false,
    }
}

/// Every kind, target and reduction on `classes` columns; epoch 200 puts LDAM-DRW past
/// its re-weighting epoch.
fn all_losses(dev: Device, dt: DType, classes: usize) -> Result<Outputs> {
    let counts = train_counts(classes);
    let mut out = Vec::new();
    for (k, (name, kind)) in kinds().into_iter().enumerate() {
        let seed = 1000 + 100 * k as u64;
        // Mixup pairs each row with another row of the batch, as the loader does, so the
        // partner labels are among the batch's (batch counts need that).
        let a = labels(seed + 1, classes);
        let b = a.iter().cycle().skip(5).take(ROWS).copied().collect();
        let mut targets = vec![
            ("hard", Target::Hard(labels(seed, classes))),
            ("mixup", Target::Mixup { a, b, lam: 0.3 }),
        ];
        // Wide logits where the clamp is under test; elsewhere a range whose losses stay
        // well above f32 rounding (LDAM scales logits by 30).
        let range = if matches!(kind, LossKind::Arb { .. }) {
            40.0
        } else {
            6.0
        };
        if takes_soft(&kind) {
            targets.push(("soft", Target::Soft(soft(dev, dt, classes, seed + 3)?)));
        }
        for (t, target) in targets {
            for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
                let criterion = Criterion::new(kind, reduction, &counts)?;
                let z = input(dev, dt, &[ROWS, classes], seed + 4, -range, range).into_parameter();
                let (loss, rows_grad) = criterion.loss_with_grad(&z, &target, 200)?;
                match reduction {
                    Reduction::None => {
                        let up = input(dev, dt, &[ROWS], seed + 5, 0.5, 1.5);
                        loss.backward_with(&up)?;
                    }
                    _ => loss.backward()?,
                }
                let tag = format!("{name} {t} {reduction:?}");
                out.push((format!("{tag} loss"), loss));
                out.push((format!("{tag} saved grad"), rows_grad));
                out.push((format!("{tag} dz"), grad(&z)));
            }
        }
    }
    Ok(out)
}

// 10 classes: a warp per row. 1500: a block per row, and with batch counts most classes
// are absent from the batch (offset -inf), so they drop out.
device_test!(fused_loss_warp_rows, 1e-5, |dev: Device, dt: DType| {
    all_losses(dev, dt, 10)
});
device_test!(fused_loss_block_rows, 1e-5, |dev: Device, dt: DType| {
    all_losses(dev, dt, 1500)
});

/// A non-finite logit is an error naming it, the same on both devices.
#[test]
fn fused_loss_names_a_non_finite_logit() {
    let Some(gpu) = crate::gpu("fused_loss_names_a_non_finite_logit") else {
        return;
    };
    let mut values = SplitMix::new(7).vec(ROWS * 10, -1.0, 1.0);
    values[3 * 10 + 4] = f64::NAN;
    values[5 * 10 + 1] = f64::INFINITY;
    let criterion = Criterion::new("ce".parse().unwrap(), Reduction::Mean, &train_counts(10))
        .expect("criterion");
    let target = Target::Hard(labels(8, 10));
    let message = |dev: Device| {
        let z = Tensor::from_vec(values.clone(), [ROWS, 10])
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_device(dev))
            .unwrap();
        criterion.loss(&z, &target, 1).unwrap_err().to_string()
    };
    let (cpu, cuda) = (message(Device::Cpu), message(gpu));
    assert!(cpu.contains("logit [3, 4] is NaN"), "{cpu}");
    assert_eq!(cpu, cuda);
}
