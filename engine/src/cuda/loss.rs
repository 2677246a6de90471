//! The fused loss (`cuda/kernels/loss.cu`): the same per-class and per-row terms as the
//! CPU kernel (`cpu/loss/`), uploaded and handed to one kernel launch.
//!
//! The kernel flags a non-finite logit instead of stopping; the host reads the flag back
//! (one 4-byte copy, which waits for the forward pass) so that the error names the logit,
//! as on the CPU. Training reads the loss value right after anyway.
use super::{gpu_err, GpuFloat};
use crate::backend::FusedLossParams;
use crate::error::{invalid, Error, Result};
use arbor_cuda::ops::loss::{fused_loss_rows, ClassTerms, LossOutputs, LossScalars, RowTargets};
use arbor_cuda::ops::memory::{copy_strided, StridedView};
use arbor_cuda::{CudaSlice, GpuDevice};

const OP: &str = "fused_loss";

/// Each row's loss and `grad_scale * dl/dz`.
pub(super) fn fused_loss<T: GpuFloat>(
    dev: &GpuDevice,
    z: &CudaSlice<T>,
    dense: Option<&CudaSlice<T>>,
    p: &FusedLossParams,
) -> Result<(CudaSlice<T>, CudaSlice<T>)> {
    p.validate(z.len(), dense.map(|d| d.len()))?;
    if p.cols > i32::MAX as usize {
        return Err(Error::Invalid {
            op: OP,
            msg: format!("{} classes do not fit the kernel's i32 labels", p.cols),
        });
    }
    let err = gpu_err(OP);
    let upload = |v: &[f64]| -> Result<Option<CudaSlice<T>>> {
        if v.is_empty() {
            return Ok(None);
        }
        let typed: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
        dev.upload(&typed).map(Some).map_err(&err)
    };
    let (offsets, margins, weights) = (upload(p.offsets)?, upload(p.margins)?, upload(p.weights)?);
    let (labels, coefs);
    let targets = match dense {
        Some(t) => RowTargets::Dense(t),
        None => {
            // Every label is below `cols`, which fits i32 (checked above).
            let as_i32: Vec<i32> = p.labels.iter().map(|&c| c as i32).collect();
            labels = dev.upload(&as_i32).map_err(&err)?;
            coefs = match upload(p.coefs)? {
                Some(coefs) => coefs,
                None => return invalid(OP, "no rows to compare with their labels"),
            };
            RowTargets::Labels {
                labels: &labels,
                coefs: &coefs,
                per_row: p.per_row,
            }
        }
    };
    let classes = ClassTerms {
        offsets: offsets.as_ref(),
        margins: margins.as_ref(),
        weights: weights.as_ref(),
    };
    let scalars = LossScalars {
        scale: T::from_f64(p.scale),
        clamp: p.clamp.map(T::from_f64),
        gamma: T::from_f64(p.gamma),
        smoothing: T::from_f64(p.smoothing),
        grad_scale: T::from_f64(p.grad_scale),
    };
    let mut row_loss = dev.alloc_zeros::<T>(p.rows).map_err(&err)?;
    let mut grad = dev.alloc_zeros::<T>(p.rows * p.cols).map_err(&err)?;
    let mut first_bad = dev.upload(&[u32::MAX]).map_err(&err)?;
    let out = LossOutputs {
        row_loss: &mut row_loss,
        grad: &mut grad,
        first_bad: &mut first_bad,
    };
    fused_loss_rows(dev, z, p.rows, p.cols, targets, classes, scalars, out).map_err(&err)?;
    let bad = dev.download(&first_bad).map_err(&err)?[0];
    if bad != u32::MAX {
        let (r, c) = (bad as usize / p.cols, bad as usize % p.cols);
        let value = read_one(dev, z, bad as usize).map_err(&err)?;
        return invalid(
            OP,
            format!("logit [{r}, {c}] is {value}: logits must be finite (the clamp would hide it)"),
        );
    }
    Ok((row_loss, grad))
}

/// Element `i` of `x`, copied to the host.
fn read_one<T: GpuFloat>(dev: &GpuDevice, x: &CudaSlice<T>, i: usize) -> arbor_cuda::Result<f64> {
    let mut one = dev.alloc_zeros::<T>(1)?;
    let view = StridedView {
        shape: &[1],
        strides: &[1],
        offset: i,
    };
    copy_strided(dev, x, &view, &mut one)?;
    Ok(dev.download(&one)?[0].to_f64())
}
