//! The engine's fused loss kernel (`ops::loss::fused_loss_rows`) against the independent
//! host reference in `loss_reference/`: every loss the experiments compare, written from
//! its definition, translated here into the kernel's per-class terms (offsets, margins,
//! scale, clamp, focal gamma, smoothing) and per-row coefficients, as the engine does.
//!
//! Tolerances: 1e-5 relative (plus an absolute floor of 1e-6 times the row's logit
//! magnitude, since L = lse - a_y can cancel) in f32 and f64 alike: the reference's
//! central differences, not the kernel's type, limit the agreement.

mod common;
mod loss_reference;

use arbor_cuda::ops::loss::{fused_loss_rows, ClassTerms, LossOutputs, LossScalars, RowTargets};
use arbor_cuda::{CudaSlice, GpuDevice};
use common::*;
use loss_reference::*;

/// Relative tolerance of a gradient entry (see the module docs).
const GRAD_REL: f64 = 1e-5;

/// `loss` in the kernel's terms. Class weights are not a kernel array for hard targets:
/// they go into each row's coefficients (see [`coefficients`]).
struct KernelTerms {
    offsets: Option<Vec<f64>>,
    margins: Option<Vec<f64>>,
    weights: Option<Vec<f64>>,
    scale: f64,
    clamp: Option<f64>,
    gamma: f64,
    smoothing: f64,
}

/// `tau log n_j`, with `log 0 = -inf` (the class drops out).
fn log_counts(counts: &[f64], tau: f64) -> Vec<f64> {
    counts
        .iter()
        .map(|&n| {
            if n > 0.0 {
                tau * n.ln()
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect()
}

fn kernel_terms(loss: &HostLoss) -> KernelTerms {
    let mut k = KernelTerms {
        offsets: None,
        margins: None,
        weights: None,
        scale: 1.0,
        clamp: None,
        gamma: 0.0,
        smoothing: 0.0,
    };
    match loss {
        HostLoss::Arb { counts } => {
            k.offsets = Some(log_counts(counts, 1.0));
            k.clamp = Some(30.0);
        }
        HostLoss::Bsm { counts, tau } => k.offsets = Some(log_counts(counts, *tau)),
        HostLoss::Ce { smoothing } => k.smoothing = *smoothing,
        HostLoss::Cb { weights } => k.weights = Some(weights.clone()),
        HostLoss::Focal { gamma } => k.gamma = *gamma,
        HostLoss::Ldam {
            margins,
            s,
            weights,
        } => {
            k.margins = Some(margins.clone());
            k.scale = *s;
            k.weights = weights.clone();
        }
    }
    k
}

/// The kernel's per-row target components: labels and coefficients, interleaved per row
/// for mixup (`lam w_a`, `(1 - lam) w_b`), and how many there are per row.
fn coefficients(case: &Case, weights: Option<&[f64]>) -> (Vec<i32>, Vec<f64>, usize) {
    let w = |y: i32| weights.map_or(1.0, |w| w[y as usize]);
    match &case.b {
        None => (case.a.clone(), case.a.iter().map(|&y| w(y)).collect(), 1),
        Some((b, lam)) => {
            let labels = case.a.iter().zip(b).flat_map(|(&x, &y)| [x, y]).collect();
            let coefs = case
                .a
                .iter()
                .zip(b)
                .flat_map(|(&x, &y)| [lam * w(x), (1.0 - lam) * w(y)])
                .collect();
            (labels, coefs, 2)
        }
    }
}

fn upload<T: Float>(dev: &GpuDevice, v: &[f64]) -> CudaSlice<T> {
    dev.upload(&to_t::<T>(v)).unwrap()
}

/// Runs the kernel for `loss` on `case` and returns (per-row loss times the case's scale,
/// gradient), both as f64, so they compare with the reference's scaled values.
fn run_kernel<T: Float + From<f32>>(
    dev: &GpuDevice,
    loss: &HostLoss,
    case: &Case,
) -> (Vec<f64>, Vec<f64>) {
    let terms = kernel_terms(loss);
    let arrays = [&terms.offsets, &terms.margins].map(|a| a.as_ref().map(|v| upload::<T>(dev, v)));
    let (labels, coefs, per_row) = coefficients(case, terms.weights.as_deref());
    let (labels, coefs) = (dev.upload(&labels).unwrap(), upload::<T>(dev, &coefs));
    let logits = upload::<T>(dev, &case.z);
    let mut row_loss = dev.alloc_zeros::<T>(case.rows).unwrap();
    let mut grad = dev.alloc_zeros::<T>(case.rows * case.classes).unwrap();
    let mut first_bad = dev.upload(&[u32::MAX]).unwrap();
    fused_loss_rows(
        dev,
        &logits,
        case.rows,
        case.classes,
        RowTargets::Labels {
            labels: &labels,
            coefs: &coefs,
            per_row,
        },
        ClassTerms {
            offsets: arrays[0].as_ref(),
            margins: arrays[1].as_ref(),
            weights: None,
        },
        LossScalars {
            scale: T::from_f64(terms.scale),
            clamp: terms.clamp.map(T::from_f64),
            gamma: T::from_f64(terms.gamma),
            smoothing: T::from_f64(terms.smoothing),
            grad_scale: T::from_f64(case.scale),
        },
        LossOutputs {
            row_loss: &mut row_loss,
            grad: &mut grad,
            first_bad: &mut first_bad,
        },
    )
    .unwrap();
    assert_eq!(
        dev.download(&first_bad).unwrap(),
        [u32::MAX],
        "finite logits"
    );
    let losses = to_f64(&dev.download(&row_loss).unwrap());
    let losses = losses.iter().map(|l| l * case.scale).collect();
    (losses, to_f64(&dev.download(&grad).unwrap()))
}

fn check<T: Float + From<f32>>(dev: &GpuDevice, loss: &HostLoss, case: &Case) {
    let what = format!(
        "{loss:?} {}x{} mixup={} {}",
        case.rows,
        case.classes,
        case.b.is_some(),
        std::any::type_name::<T>()
    );
    let what = &what[..what.len().min(200)];
    let (got_loss, got_grad) = run_kernel::<T>(dev, loss, case);
    let (want_loss, want_grad, floors) = case.reference(loss);
    for i in 0..case.rows {
        let tol = 1e-5 * want_loss[i].abs() + floors[i];
        assert!(
            (got_loss[i] - want_loss[i]).abs() <= tol,
            "{what}: loss[{i}] {} vs {}",
            got_loss[i],
            want_loss[i]
        );
        for j in 0..case.classes {
            let k = i * case.classes + j;
            // The floor covers f32 rounding of p near 1.
            let tol = GRAD_REL * want_grad[k].abs() + floors[i] + 1e-7;
            assert!(
                (got_grad[k] - want_grad[k]).abs() <= tol,
                "{what}: grad[{i},{j}] {} vs {}",
                got_grad[k],
                want_grad[k]
            );
        }
    }
}

/// (rows, classes): a warp per row with a partial last block, the largest warp rows, the
/// smallest block rows, long block rows.
const SHAPES: [(usize, usize); 4] = [(13, 10), (4, 1024), (3, 1025), (2, 3000)];

fn every_loss<T: Float + From<f32>>(dev: &GpuDevice) {
    for (s, &(rows, classes)) in SHAPES.iter().enumerate() {
        for mixup in [false, true] {
            let seed = 100 * s as u64 + mixup as u64;
            let global = long_tail(classes);
            // ARB: logits beyond +-30 exercise the clamp and its zero gradient.
            let case = Case::new::<T>(rows, classes, 40.0, mixup, seed);
            check::<T>(
                dev,
                &HostLoss::Arb {
                    counts: global.clone(),
                },
                &case,
            );
            check::<T>(
                dev,
                &HostLoss::Arb {
                    counts: case.batch_counts(),
                },
                &case,
            );
            let case = Case::new::<T>(rows, classes, 6.0, mixup, seed + 7);
            check::<T>(
                dev,
                &HostLoss::Bsm {
                    counts: case.batch_counts(),
                    tau: 1.5,
                },
                &case,
            );
            check::<T>(dev, &HostLoss::Ce { smoothing: 0.0 }, &case);
            check::<T>(dev, &HostLoss::Ce { smoothing: 0.1 }, &case);
            check::<T>(
                dev,
                &HostLoss::Cb {
                    weights: class_balanced_weights(&global, 0.9999),
                },
                &case,
            );
            check::<T>(dev, &HostLoss::Focal { gamma: 2.0 }, &case);
            check::<T>(dev, &HostLoss::Focal { gamma: 0.5 }, &case);
            // LDAM on cosine-like logits in [-1, 1], scaled by s = 30.
            let case = Case::new::<T>(rows, classes, 1.0, mixup, seed + 13);
            let margins = ldam_margins(&global);
            check::<T>(
                dev,
                &HostLoss::Ldam {
                    margins: margins.clone(),
                    s: 30.0,
                    weights: None,
                },
                &case,
            );
            let drw = Some(class_balanced_weights(&global, 0.9999));
            check::<T>(
                dev,
                &HostLoss::Ldam {
                    margins,
                    s: 30.0,
                    weights: drw,
                },
                &case,
            );
        }
    }
}

#[test]
fn fused_losses_match_reference_f32() {
    let Some(dev) = gpu("fused_losses_match_reference_f32") else {
        return;
    };
    every_loss::<f32>(&dev);
}

#[test]
fn fused_losses_match_reference_f64() {
    let Some(dev) = gpu("fused_losses_match_reference_f64") else {
        return;
    };
    every_loss::<f64>(&dev);
}

#[test]
fn sum_reduction_scales_by_one() {
    let Some(dev) = gpu("sum_reduction_scales_by_one") else {
        return;
    };
    let mut case = Case::new::<f32>(8, 10, 5.0, false, 9);
    case.scale = 1.0;
    check::<f32>(
        &dev,
        &HostLoss::Arb {
            counts: long_tail(10),
        },
        &case,
    );
}

/// A non-finite logit is flagged (the host turns the flag into an error naming it), not
/// hidden by the clamp, and the other rows are still computed.
#[test]
fn the_first_non_finite_logit_is_flagged() {
    let Some(dev) = gpu("the_first_non_finite_logit_is_flagged") else {
        return;
    };
    let (rows, classes) = (4, 10);
    let mut z = vec![0.5f32; rows * classes];
    z[classes + 2] = f32::INFINITY; // row 1
    z[3 * classes + 7] = f32::NAN; // row 3: the clamp would turn NaN into -30
    let logits = dev.upload(&z).unwrap();
    let labels = dev.upload(&[1i32, 2, 3, 4]).unwrap();
    let coefs = dev.upload(&[1.0f32; 4]).unwrap();
    let offsets = dev.upload(&[0.0f32; 10]).unwrap();
    let mut row_loss = dev.alloc_zeros::<f32>(rows).unwrap();
    let mut grad = dev.alloc_zeros::<f32>(rows * classes).unwrap();
    let mut first_bad = dev.upload(&[u32::MAX]).unwrap();
    fused_loss_rows(
        &dev,
        &logits,
        rows,
        classes,
        RowTargets::Labels {
            labels: &labels,
            coefs: &coefs,
            per_row: 1,
        },
        ClassTerms {
            offsets: Some(&offsets),
            ..ClassTerms::default()
        },
        LossScalars {
            scale: 1.0,
            clamp: Some(30.0),
            gamma: 0.0,
            smoothing: 0.0,
            grad_scale: 0.25,
        },
        LossOutputs {
            row_loss: &mut row_loss,
            grad: &mut grad,
            first_bad: &mut first_bad,
        },
    )
    .unwrap();
    assert_eq!(dev.download(&first_bad).unwrap(), [(classes + 2) as u32]);
    let (loss, grad) = (
        dev.download(&row_loss).unwrap(),
        dev.download(&grad).unwrap(),
    );
    assert!((loss[2] - 10f32.ln()).abs() < 1e-6, "{}", loss[2]);
    for (j, g) in grad[2 * classes..3 * classes].iter().enumerate() {
        let want = 0.25 * (0.1 - if j == 3 { 1.0 } else { 0.0 });
        assert!((g - want).abs() < 1e-7, "grad[2, {j}] {g} vs {want}");
    }
}

#[test]
fn wrong_lengths_are_errors() {
    let Some(dev) = gpu("wrong_lengths_are_errors") else {
        return;
    };
    let logits = dev.alloc_zeros::<f32>(20).unwrap();
    let labels = dev.upload(&[0i32, 1]).unwrap();
    let coefs = dev.upload(&[1.0f32; 2]).unwrap();
    let short = dev.upload(&[1.0f32; 9]).unwrap();
    let scalars = LossScalars {
        scale: 1.0,
        clamp: None,
        gamma: 0.0,
        smoothing: 0.0,
        grad_scale: 0.5,
    };
    let run = |targets: RowTargets<f32>, classes: ClassTerms<f32>| {
        let mut row_loss = dev.alloc_zeros::<f32>(2).unwrap();
        let mut grad = dev.alloc_zeros::<f32>(20).unwrap();
        let mut first_bad = dev.upload(&[u32::MAX]).unwrap();
        let out = LossOutputs {
            row_loss: &mut row_loss,
            grad: &mut grad,
            first_bad: &mut first_bad,
        };
        fused_loss_rows(&dev, &logits, 2, 10, targets, classes, scalars, out)
    };
    let hard = |per_row| RowTargets::Labels {
        labels: &labels,
        coefs: &coefs,
        per_row,
    };
    assert!(run(hard(1), ClassTerms::default()).is_ok());
    // Nine offsets for ten classes.
    let nine = ClassTerms {
        offsets: Some(&short),
        ..ClassTerms::default()
    };
    assert!(run(hard(1), nine).is_err());
    // Two labels cannot be two components for each of two rows.
    assert!(run(hard(2), ClassTerms::default()).is_err());
    assert!(run(RowTargets::Dense(&short), ClassTerms::default()).is_err());
}
