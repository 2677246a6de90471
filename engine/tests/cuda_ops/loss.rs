//! The fused loss, CPU vs GPU: every term the experiments' losses use, alone and combined
//! as they combine them; hard, mixup and soft targets; ARB's batch and global counts, with
//! and without the clamp; every reduction; the saved per-row gradient; rows short enough
//! for a warp and long enough for a block; and the error for a non-finite logit.
use crate::{grad, input, Outputs};
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{arb_spec, batch_counts, ArbOptions, FusedLoss, Reduction, Target};
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

/// A fused-loss configuration under test, in the engine's terms; `batch_offsets` replaces
/// the offsets with `log n_j` of the target's own labels (ARB's batch counts).
struct Case {
    name: &'static str,
    spec: FusedLoss,
    batch_offsets: bool,
}

/// The configurations the experiments' losses (`arbor_models::loss`) produce, each term
/// alone and combined as those losses combine them: cross-entropy with smoothing, focal
/// gamma, class weights, margins with a logit scale, log-prior offsets (dropping absent
/// classes under batch counts), ARB's clamp. Every one on both devices is what matters
/// here; each loss's formula is checked on the CPU in the models' tests.
fn cases(counts: &[f64], reduction: Reduction) -> Result<Vec<Case>> {
    let c = counts.len();
    let ce = |name| FusedLoss::cross_entropy(name, reduction);
    // Positive per-class values shaped like the losses' (not their exact formulas).
    let weights: Vec<f64> = counts.iter().map(|n| c as f64 / n.sqrt()).collect();
    let margins: Vec<f64> = counts.iter().map(|n| 0.5 * n.powf(-0.25)).collect();
    let log_prior = |tau: f64| counts.iter().map(|n| tau * n.ln()).collect::<Vec<_>>();
    let arb = |clamp| arb_spec(counts, c, &ArbOptions { clamp, reduction });
    let case = |name, spec| Case {
        name,
        spec,
        batch_offsets: false,
    };
    let ldam = FusedLoss {
        margins,
        scale: 30.0,
        ..ce("ldam")
    };
    Ok(vec![
        case("ce", ce("ce")),
        case(
            "ce smoothing 0.1",
            FusedLoss {
                smoothing: 0.1,
                ..ce("ce")
            },
        ),
        case(
            "focal",
            FusedLoss {
                gamma: 1.0,
                ..ce("focal")
            },
        ),
        case(
            "focal gamma 2",
            FusedLoss {
                gamma: 2.0,
                ..ce("focal")
            },
        ),
        case(
            "class weights",
            FusedLoss {
                weights: weights.clone(),
                ..ce("cb")
            },
        ),
        case("ldam margins", ldam.clone()),
        case("ldam margins and weights", FusedLoss { weights, ..ldam }),
        case(
            "bsm offsets",
            FusedLoss {
                offsets: log_prior(1.5),
                ..ce("bsm")
            },
        ),
        case("arb global clamp", arb(true)?),
        Case {
            name: "arb batch clamp",
            spec: arb(true)?,
            batch_offsets: true,
        },
        Case {
            name: "arb batch no clamp",
            spec: arb(false)?,
            batch_offsets: true,
        },
    ])
}

/// Whether the case takes soft targets (batch counts need labels; focal, margins and
/// smoothing need one target class).
fn takes_soft(case: &Case) -> bool {
    !case.batch_offsets
        && case.spec.gamma == 0.0
        && case.spec.margins.is_empty()
        && case.spec.smoothing == 0.0
}

/// Every case, target and reduction on `classes` columns.
fn all_losses(dev: Device, dt: DType, classes: usize) -> Result<Outputs> {
    let counts = train_counts(classes);
    let mut out = Vec::new();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for (k, case) in cases(&counts, reduction)?.into_iter().enumerate() {
            let seed = 1000 + 100 * k as u64;
            // Mixup pairs each row with another row of the batch, as the loader does, so
            // the partner labels are among the batch's (batch counts need that).
            let a = labels(seed + 1, classes);
            let b = a.iter().cycle().skip(5).take(ROWS).copied().collect();
            let mut targets = vec![
                ("hard", Target::Hard(labels(seed, classes))),
                ("mixup", Target::Mixup { a, b, lam: 0.3 }),
            ];
            // Wide logits where the clamp is under test; elsewhere a range whose losses
            // stay well above f32 rounding (margins come with a logit scale of 30).
            let range = if case.spec.clamp.is_some() { 40.0 } else { 6.0 };
            if takes_soft(&case) {
                targets.push(("soft", Target::Soft(soft(dev, dt, classes, seed + 3)?)));
            }
            for (t, target) in targets {
                let mut spec = case.spec.clone();
                if let (true, Some(y)) = (case.batch_offsets, target.labels()) {
                    spec = arb_spec(
                        &batch_counts(y, classes),
                        classes,
                        &ArbOptions {
                            clamp: spec.clamp.is_some(),
                            reduction,
                        },
                    )?;
                }
                let z = input(dev, dt, &[ROWS, classes], seed + 4, -range, range).into_parameter();
                let (loss, rows_grad) = z.fused_loss_with_grad(&spec, &target)?;
                match reduction {
                    Reduction::None => {
                        let up = input(dev, dt, &[ROWS], seed + 5, 0.5, 1.5);
                        loss.backward_with(&up)?;
                    }
                    _ => loss.backward()?,
                }
                let tag = format!("{} {t} {reduction:?}", case.name);
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
    let ce = FusedLoss::cross_entropy("ce", Reduction::Mean);
    let target = Target::Hard(labels(8, 10));
    let message = |dev: Device| {
        let z = Tensor::from_vec(values.clone(), [ROWS, 10])
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_device(dev))
            .unwrap();
        z.fused_loss(&ce, &target).unwrap_err().to_string()
    };
    let (cpu, cuda) = (message(Device::Cpu), message(gpu));
    assert!(cpu.contains("logit [3, 4] is NaN"), "{cpu}");
    assert_eq!(cpu, cuda);
}
