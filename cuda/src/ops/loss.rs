//! The engine's fused loss (`kernels/loss.cu`): one kernel for ARB-Loss and all its
//! baselines, parameterised the way the engine describes a loss (per-class offsets,
//! margins and weights; per-row target components with coefficients, or dense target
//! rows; a logit scale and clamp; focal gamma; label smoothing). It writes each row's loss
//! and `grad_scale * dl/dz` in one launch. The formulas are in the kernel file's header.
//! The op's backward only rescales the saved gradient, so it needs no kernel here.
// The wrapper mirrors the kernel's parameter list.
#![allow(clippy::too_many_arguments)]

use super::{check_len, kernel_count, rows_launch};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
use crate::kernels::LOSS;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// What each row is compared with.
#[derive(Clone, Copy, Debug)]
pub enum RowTargets<'a, T> {
    /// `per_row` (1, or 2 for mixup) target classes per row, row-major, each with a
    /// coefficient (class weights, the mixup `lam` and a weighted mean's normaliser are
    /// folded into it). Classes must lie in `0..cols` (the caller validates them).
    Labels {
        labels: &'a CudaSlice<i32>,
        coefs: &'a CudaSlice<T>,
        per_row: usize,
    },
    /// A `[rows, cols]` row of target probabilities per sample.
    Dense(&'a CudaSlice<T>),
}

/// Per-class arrays (`cols` values each); `None` is the neutral value.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClassTerms<'a, T> {
    /// Added to the scaled logits; `-inf` drops the class.
    pub offsets: Option<&'a CudaSlice<T>>,
    /// Subtracted (times `scale`) from the target logit.
    pub margins: Option<&'a CudaSlice<T>>,
    /// Dense targets only: weight of class j's term.
    pub weights: Option<&'a CudaSlice<T>>,
}

/// The scalars of the loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScalars<T> {
    /// Logit scale `s`.
    pub scale: T,
    /// Logits are clamped into `[-c, c]` (no gradient outside); `None` for no clamp.
    pub clamp: Option<T>,
    /// Focal exponent; 0 is cross-entropy.
    pub gamma: T,
    /// Label smoothing `eps` (hard targets).
    pub smoothing: T,
    /// Multiplies the written gradient (a mean's `1/B`).
    pub grad_scale: T,
}

/// Outputs of one launch.
#[derive(Debug)]
pub struct LossOutputs<'a, T> {
    /// `[rows]`: each row's loss `l_i`.
    pub row_loss: &'a mut CudaSlice<T>,
    /// `[rows, cols]`: `grad_scale * dl_i / dz_i`.
    pub grad: &'a mut CudaSlice<T>,
    /// One element the caller sets to `u32::MAX`; the kernel lowers it to the flat index of
    /// the first non-finite logit, if any, so the caller can report it.
    pub first_bad: &'a mut CudaSlice<u32>,
}

/// Runs the fused loss over `[rows, cols]` logits. Checks every buffer's length; the values
/// (labels in range, targets that are distributions) are the caller's to validate.
pub fn fused_loss_rows<T: Real + From<f32>>(
    dev: &GpuDevice,
    logits: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    targets: RowTargets<T>,
    classes: ClassTerms<T>,
    scalars: LossScalars<T>,
    out: LossOutputs<T>,
) -> Result<()> {
    let n = kernel_count("logits", rows.saturating_mul(cols))?;
    check_len("logits", logits.len(), n as usize)?;
    check_len("grad", out.grad.len(), n as usize)?;
    check_len("row loss", out.row_loss.len(), rows)?;
    check_len("first_bad", out.first_bad.len(), 1)?;
    for (what, array) in [
        ("offsets", classes.offsets),
        ("margins", classes.margins),
        ("weights", classes.weights),
    ] {
        if let Some(array) = array {
            check_len(what, array.len(), cols)?;
        }
    }
    let per_row = match targets {
        RowTargets::Labels {
            labels,
            coefs,
            per_row,
        } => {
            if !(1..=2).contains(&per_row) {
                return Err(shape_error(format!(
                    "{per_row} target components per row; 1 or 2 are supported"
                )));
            }
            check_len("labels", labels.len(), rows * per_row)?;
            check_len("coefficients", coefs.len(), rows * per_row)?;
            per_row
        }
        RowTargets::Dense(t) => {
            check_len("dense targets", t.len(), n as usize)?;
            1
        }
    };
    if n == 0 {
        return Ok(());
    }
    let (cfg, variant) = rows_launch(rows as u32, cols);
    let (rows, cols, per_row) = (rows as u32, cols as u32, per_row as u32);
    let clamp = scalars.clamp.unwrap_or(T::from(f32::INFINITY));
    let null: u64 = 0;
    let function = dev.function(&LOSS, "fused_loss", variant, T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(logits);
    match targets {
        RowTargets::Labels { labels, coefs, .. } => launch.arg(&null).arg(labels).arg(coefs),
        RowTargets::Dense(t) => launch.arg(t).arg(&null).arg(&null),
    };
    for array in [classes.offsets, classes.margins, classes.weights] {
        match array {
            Some(array) => launch.arg(array),
            None => launch.arg(&null),
        };
    }
    launch
        .arg(out.grad)
        .arg(out.row_loss)
        .arg(out.first_bad)
        .arg(&rows)
        .arg(&cols)
        .arg(&per_row);
    launch
        .arg(&scalars.scale)
        .arg(&clamp)
        .arg(&scalars.gamma)
        .arg(&scalars.smoothing)
        .arg(&scalars.grad_scale);
    // SAFETY: the arguments follow FUSED_LOSS_PARAMS in `loss.cu` (a null pointer
    // for each absent buffer); every buffer's length was checked against rows and cols.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}
