//! The fused losses against the independent host reference in `loss_reference/`.
//!
//! Tolerances: f32 logits 1e-5 relative (plus an absolute floor of 1e-6 times the row's
//! logit magnitude, since L = lse - a_y can cancel); f16 / bf16 logits give the same loss
//! (computed in f32 from the rounded logits) and a gradient within 1e-3 (f16) / 8e-3
//! (bf16) relative, the rounding of the gradient's storage type.

mod common;
mod loss_reference;

use arbor_cuda::ops::loss::{check_loss_inputs, fused_loss_fwd_bwd, LossBatch, LossKind, Targets};
use arbor_cuda::{CudaSlice, GpuDevice, Logit};
use common::*;
use loss_reference::*;

fn upload_f32(dev: &GpuDevice, v: &[f64]) -> CudaSlice<f32> {
    dev.upload(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
        .unwrap()
}

/// Runs the kernel for `loss` on `case` and returns (per-row loss, gradient as f64).
fn run_kernel<T: Logit + HalfLike>(
    dev: &GpuDevice,
    loss: &HostLoss,
    case: &Case,
) -> (Vec<f64>, Vec<f64>) {
    let upload_opt = |v: &Option<Vec<f64>>| v.as_ref().map(|v| upload_f32(dev, v));
    let (arrays, extra): (Vec<CudaSlice<f32>>, Option<CudaSlice<f32>>) = match loss {
        HostLoss::Arb { counts } | HostLoss::Bsm { counts, .. } => {
            (vec![upload_f32(dev, counts)], None)
        }
        HostLoss::Cb { weights } => (vec![upload_f32(dev, weights)], None),
        HostLoss::Ldam {
            margins, weights, ..
        } => (vec![upload_f32(dev, margins)], upload_opt(weights)),
        HostLoss::Ce { .. } | HostLoss::Focal { .. } => (vec![], None),
    };
    let kind = match loss {
        HostLoss::Arb { .. } => LossKind::Arb { counts: &arrays[0] },
        HostLoss::Bsm { tau, .. } => LossKind::BalancedSoftmax {
            counts: &arrays[0],
            tau: *tau as f32,
        },
        HostLoss::Ce { smoothing } => LossKind::CrossEntropy {
            smoothing: *smoothing as f32,
        },
        HostLoss::Cb { .. } => LossKind::ClassBalanced {
            weights: &arrays[0],
        },
        HostLoss::Focal { gamma } => LossKind::Focal {
            gamma: *gamma as f32,
        },
        HostLoss::Ldam { s, .. } => LossKind::Ldam {
            margins: &arrays[0],
            s: *s as f32,
            weights: extra.as_ref(),
        },
    };
    let logits = dev
        .upload(&case.z.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>())
        .unwrap();
    let a = dev.upload(&case.a).unwrap();
    let b = case.b.as_ref().map(|(b, _)| dev.upload(b).unwrap());
    let targets = match (&b, &case.b) {
        (Some(b), Some((_, lam))) => Targets::Mixup {
            a: &a,
            b,
            lam: *lam as f32,
        },
        _ => Targets::Hard(&a),
    };
    let batch = LossBatch {
        logits: &logits,
        rows: case.rows,
        classes: case.classes,
        targets,
        scale: case.scale as f32,
    };
    let mut out_loss = dev.alloc_zeros::<f32>(case.rows).unwrap();
    let mut grad = dev.alloc_zeros::<T>(case.rows * case.classes).unwrap();
    fused_loss_fwd_bwd(dev, &kind, &batch, &mut out_loss, &mut grad).unwrap();
    let losses = dev
        .download(&out_loss)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let grad = dev
        .download(&grad)
        .unwrap()
        .into_iter()
        .map(HalfLike::to_f64)
        .collect();
    (losses, grad)
}

fn check<T: Logit + HalfLike>(dev: &GpuDevice, loss: &HostLoss, case: &Case) {
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
            // The floor covers f32 rounding of p near 1; f16's smallest subnormal is 6e-8.
            let tol = T::GRAD_REL * want_grad[k].abs() + floors[i] + 1e-7;
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

fn every_loss<T: Logit + HalfLike>(dev: &GpuDevice) {
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
fn fused_losses_match_reference_f16_and_bf16() {
    let Some(dev) = gpu("fused_losses_match_reference_f16_and_bf16") else {
        return;
    };
    every_loss::<half::f16>(&dev);
    every_loss::<half::bf16>(&dev);
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

#[test]
fn bad_rows_are_flagged_not_hidden() {
    let Some(dev) = gpu("bad_rows_are_flagged_not_hidden") else {
        return;
    };
    let (rows, classes) = (4, 10);
    let mut z = vec![0.5f32; rows * classes];
    z[3] = f32::NAN; // row 0: the clamp would turn NaN into -30
    z[classes + 2] = f32::INFINITY; // row 1
    let labels = [1, 2, 3, 10]; // row 3: out of range
    let logits = dev.upload(&z).unwrap();
    let a = dev.upload(&labels).unwrap();
    let counts = dev.upload(&[1.0f32; 10]).unwrap();
    let batch = LossBatch {
        logits: &logits,
        rows,
        classes,
        targets: Targets::Hard(&a),
        scale: 0.25,
    };
    let mut loss = dev.alloc_zeros::<f32>(rows).unwrap();
    let mut grad = dev.alloc_zeros::<f32>(rows * classes).unwrap();
    fused_loss_fwd_bwd(
        &dev,
        &LossKind::Arb { counts: &counts },
        &batch,
        &mut loss,
        &mut grad,
    )
    .unwrap();
    let (loss, grad) = (dev.download(&loss).unwrap(), dev.download(&grad).unwrap());
    assert!(loss[0].is_nan() && loss[1].is_nan() && loss[3].is_nan());
    assert!((loss[2] - 0.25 * 10f32.ln()).abs() < 1e-6);
    assert!(grad[..2 * classes].iter().all(|g| g.is_nan()));
    assert!(grad[3 * classes..].iter().all(|&g| g == 0.0));
    // Host validation reports the same problems as errors.
    assert!(check_loss_inputs(&labels, classes, None).is_err());
}

#[test]
fn wrong_lengths_are_errors() {
    let Some(dev) = gpu("wrong_lengths_are_errors") else {
        return;
    };
    let logits = dev.alloc_zeros::<f32>(20).unwrap();
    let a = dev.upload(&[0i32, 1]).unwrap();
    let counts = dev.upload(&[1.0f32; 9]).unwrap();
    let batch = LossBatch {
        logits: &logits,
        rows: 2,
        classes: 10,
        targets: Targets::Hard(&a),
        scale: 0.5,
    };
    let mut loss = dev.alloc_zeros::<f32>(2).unwrap();
    let mut grad = dev.alloc_zeros::<f32>(20).unwrap();
    assert!(fused_loss_fwd_bwd(
        &dev,
        &LossKind::Arb { counts: &counts },
        &batch,
        &mut loss,
        &mut grad
    )
    .is_err());
}

/// Host-only: the reference's stable ARB form equals the paper's direct form
/// L = -log(exp(z~_y) / sum_j (n_j / n_y) exp(z~_j)) for |z| <= 30.
#[test]
fn arb_reference_matches_the_direct_exp_form() {
    let mut rng = Rng::new(77);
    let classes = 100;
    let counts: Vec<f64> = (0..classes)
        .map(|j| {
            if j % 7 == 3 {
                0.0
            } else {
                (1 + rng.below(500)) as f64
            }
        })
        .collect();
    let loss = HostLoss::Arb {
        counts: counts.clone(),
    };
    for _ in 0..50 {
        let z = rng.vec(classes, -30.0, 30.0);
        let y = (0..classes)
            .find(|&j| counts[j] > 0.0 && rng.unit() < 0.1)
            .unwrap_or(0);
        let denominator: f64 = (0..classes)
            .map(|j| counts[j] / counts[y] * z[j].exp())
            .sum();
        let direct = -(z[y].exp() / denominator).ln();
        let stable = loss.single(&z, y);
        assert!(
            (direct - stable).abs() <= 1e-12 * direct.abs().max(1.0),
            "{direct} vs {stable}"
        );
    }
}

/// Host-only: the finite-difference reference gradient equals the spec's closed form
/// dL/dz = (p - onehot) * mask / B, so the GPU tests compare against the right thing.
#[test]
fn reference_gradient_matches_the_spec_formula() {
    let case = Case::new::<f32>(5, 12, 40.0, false, 3);
    let counts = case.batch_counts();
    let (_, grad, _) = case.reference(&HostLoss::Arb {
        counts: counts.clone(),
    });
    for i in 0..case.rows {
        let z = &case.z[i * 12..(i + 1) * 12];
        let a: Vec<f64> = (0..12)
            .map(|j| {
                if counts[j] > 0.0 {
                    z[j].clamp(-30.0, 30.0) + counts[j].ln()
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let lse = logsumexp(a.iter().cloned());
        for j in 0..12 {
            let p = (a[j] - lse).exp();
            let onehot = if j == case.a[i] as usize { 1.0 } else { 0.0 };
            let mask = if z[j].abs() <= 30.0 { 1.0 } else { 0.0 };
            let want = (p - onehot) * mask / case.rows as f64;
            assert!(
                (grad[i * 12 + j] - want).abs() < 1e-8,
                "[{i},{j}] {} vs {want}",
                grad[i * 12 + j]
            );
        }
    }
}
