//! The fused classification losses (`kernels/loss.cu`): one launch computes every row's
//! loss and writes dL/dz once. The op's backward only rescales the saved gradient (by the
//! upstream scalar, or per row for reduction `none`), so it needs no kernel here.
//!
//! Formulas: `shared/spec/arb-loss.md` and the header of `loss.cu`.

use super::{check_len, kernel_count, rows_launch};
use crate::device::GpuDevice;
use crate::dtype::Logit;
use crate::error::{shape_error, Result};
use crate::kernels::LOSS;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Which loss, with its per-class arrays (length C, f32) and scalars.
#[derive(Clone, Copy, Debug)]
pub enum LossKind<'a> {
    /// ARB-Loss: logits clamped to [-30, 30] (no gradient outside), plus log n_j; classes
    /// with n_j = 0 drop out. `counts` are global or per-batch class counts.
    Arb {
        /// Class counts n_j >= 0.
        counts: &'a CudaSlice<f32>,
    },
    /// Balanced Softmax / logit adjustment: z_j + tau log n_j, no clamp.
    BalancedSoftmax {
        /// Class counts n_j >= 0.
        counts: &'a CudaSlice<f32>,
        /// Temperature on log n_j.
        tau: f32,
    },
    /// Cross-entropy with label smoothing eps (targets (1-eps) one-hot + eps/C).
    CrossEntropy {
        /// Label smoothing eps in [0, 1).
        smoothing: f32,
    },
    /// Class-balanced cross-entropy: row i weighted by `weights[y_i]`.
    ClassBalanced {
        /// Per-class weights, e.g. (1 - beta) / (1 - beta^n_j) normalised to sum to C.
        weights: &'a CudaSlice<f32>,
    },
    /// Focal loss -(1 - p_y)^gamma log p_y.
    Focal {
        /// Focusing parameter gamma >= 0 (0 is cross-entropy).
        gamma: f32,
    },
    /// LDAM: logits s (z_j - m_j [j = y]), optionally class-weighted (deferred
    /// re-weighting).
    Ldam {
        /// Per-class margins m_j.
        margins: &'a CudaSlice<f32>,
        /// Logit scale s (30 in the paper).
        s: f32,
        /// Per-class weights once re-weighting starts, else None.
        weights: Option<&'a CudaSlice<f32>>,
    },
}

/// The labels of a batch.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One label per row, in 0..C.
    Hard(&'a CudaSlice<i32>),
    /// Mixup: loss lam * L(a) + (1 - lam) * L(b).
    Mixup {
        /// First label of each row.
        a: &'a CudaSlice<i32>,
        /// Second label of each row.
        b: &'a CudaSlice<i32>,
        /// Weight of `a`.
        lam: f32,
    },
}

/// The inputs every fused loss shares.
#[derive(Clone, Copy, Debug)]
pub struct LossBatch<'a, T> {
    /// Logits [rows, classes].
    pub logits: &'a CudaSlice<T>,
    /// Batch size B.
    pub rows: usize,
    /// Number of classes C.
    pub classes: usize,
    /// Labels.
    pub targets: Targets<'a>,
    /// Factor on each row's loss and gradient: 1/B for a mean, 1 for sum and none.
    pub scale: f32,
}

/// `loss[i] = scale * L_i` and `grad = d(sum_i loss[i]) / dz`, in one pass over the logits.
///
/// A row whose logits include a non-finite value gets a NaN loss and gradient; a row with
/// an out-of-range label gets a NaN loss and zero gradient. Validate labels and counts on
/// the host first with [`check_loss_inputs`] to report those as errors instead.
pub fn fused_loss_fwd_bwd<T: Logit>(
    dev: &GpuDevice,
    kind: &LossKind,
    batch: &LossBatch<T>,
    loss: &mut CudaSlice<f32>,
    grad: &mut CudaSlice<T>,
) -> Result<()> {
    let (rows, classes) = (batch.rows, batch.classes);
    let n = kernel_count("logits", rows.saturating_mul(classes))?;
    check_len("logits", batch.logits.len(), n as usize)?;
    check_len("grad", grad.len(), n as usize)?;
    check_len("loss", loss.len(), rows)?;
    let (label_a, label_b, lam) = match batch.targets {
        Targets::Hard(a) => (a, None, 1.0f32),
        Targets::Mixup { a, b, lam } => (a, Some(b), lam),
    };
    check_len("labels", label_a.len(), rows)?;
    if let Some(b) = label_b {
        check_len("second labels", b.len(), rows)?;
    }
    let per_class = match kind {
        LossKind::Arb { counts } | LossKind::BalancedSoftmax { counts, .. } => {
            Some(("counts", *counts))
        }
        LossKind::ClassBalanced { weights } => Some(("weights", *weights)),
        LossKind::Ldam { margins, .. } => Some(("margins", *margins)),
        LossKind::CrossEntropy { .. } | LossKind::Focal { .. } => None,
    };
    if let Some((what, array)) = per_class {
        check_len(what, array.len(), classes)?;
    }
    let weights = match kind {
        LossKind::ClassBalanced { weights } => Some(*weights),
        LossKind::Ldam { weights, .. } => *weights,
        _ => None,
    };
    if let Some(weights) = weights {
        check_len("weights", weights.len(), classes)?;
    }
    if n == 0 {
        return Ok(());
    }

    let base = match kind {
        LossKind::Arb { .. } => "arb_loss",
        LossKind::BalancedSoftmax { .. } => "bsm_loss",
        LossKind::CrossEntropy { .. } | LossKind::ClassBalanced { .. } => "ce_loss",
        LossKind::Focal { .. } => "focal_loss",
        LossKind::Ldam { .. } => "ldam_loss",
    };
    let (cfg, variant) = rows_launch(rows as u32, classes);
    let (rows, classes) = (rows as u32, classes as u32);
    let null_pointer: u64 = 0;
    let no_smoothing = 0.0f32;
    let function = dev.function(&LOSS, base, variant, T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(batch.logits).arg(grad).arg(loss).arg(label_a);
    match label_b {
        Some(b) => launch.arg(b),
        None => launch.arg(&null_pointer),
    };
    launch.arg(&lam);
    match weights {
        Some(w) => launch.arg(w),
        None => launch.arg(&null_pointer),
    };
    launch.arg(&batch.scale).arg(&rows).arg(&classes);
    match kind {
        LossKind::Arb { counts } => launch.arg(*counts),
        LossKind::BalancedSoftmax { counts, tau } => launch.arg(*counts).arg(tau),
        LossKind::CrossEntropy { smoothing } => launch.arg(smoothing),
        LossKind::ClassBalanced { .. } => launch.arg(&no_smoothing),
        LossKind::Focal { gamma } => launch.arg(gamma),
        LossKind::Ldam { margins, s, .. } => launch.arg(*margins).arg(s),
    };
    // SAFETY: the arguments follow LOSS_PARAMS plus the loss's own parameters in
    // `loss.cu`; every buffer's length was checked against rows and classes, and the
    // kernel bounds-checks labels before using them as indices.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Host-side validation of a fused loss's labels and (for ARB / Balanced Softmax) class
/// counts, with the errors the spec asks for: a label outside 0..C, counts of the wrong
/// length, a negative or non-finite count, a label whose class has count 0, an empty batch.
pub fn check_loss_inputs(labels: &[i32], classes: usize, counts: Option<&[f32]>) -> Result<()> {
    if labels.is_empty() {
        return Err(shape_error("loss over an empty batch"));
    }
    if let Some((i, y)) = labels
        .iter()
        .enumerate()
        .find(|(_, &y)| y < 0 || y as usize >= classes)
    {
        return Err(shape_error(format!(
            "label {y} of row {i} is outside 0..{classes}"
        )));
    }
    let Some(counts) = counts else { return Ok(()) };
    check_len("class counts", counts.len(), classes)?;
    if let Some((j, n)) = counts
        .iter()
        .enumerate()
        .find(|(_, n)| !n.is_finite() || **n < 0.0)
    {
        return Err(shape_error(format!(
            "class count n_{j} = {n} is negative or not finite"
        )));
    }
    if let Some((i, y)) = labels
        .iter()
        .enumerate()
        .find(|(_, &y)| counts[y as usize] == 0.0)
    {
        return Err(shape_error(format!(
            "row {i} has label {y}, whose class count is 0"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_inputs_are_validated() {
        assert!(check_loss_inputs(&[0, 2], 3, Some(&[1.0, 0.0, 2.0])).is_ok());
        assert!(check_loss_inputs(&[], 3, None).is_err());
        assert!(check_loss_inputs(&[3], 3, None).is_err());
        assert!(check_loss_inputs(&[-1], 3, None).is_err());
        assert!(check_loss_inputs(&[0], 3, Some(&[1.0, 1.0])).is_err());
        assert!(check_loss_inputs(&[0], 2, Some(&[1.0, -1.0])).is_err());
        assert!(check_loss_inputs(&[0], 2, Some(&[1.0, f32::NAN])).is_err());
        assert!(check_loss_inputs(&[1], 2, Some(&[1.0, 0.0])).is_err());
    }
}
