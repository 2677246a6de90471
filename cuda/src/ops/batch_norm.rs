//! batch_norm2d over NCHW (`kernels/batch_norm.cu`); per channel c over the
//! M = N*H*W values of that channel.
//!
//! Both forwards fill `saved_mean` / `saved_invstd` (the batch's in training, the running
//! ones in eval) so that one backward serves both modes.
// The wrappers mirror the kernels' parameter lists: buffers, shape, scalars.
#![allow(clippy::too_many_arguments)]

use super::{check_len, grid_for, kernel_count, BLOCK_THREADS};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
use crate::kernels::BATCH_NORM;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// The NCHW shape of a batch-norm input, with H*W folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormShape {
    /// Batch size N.
    pub n: usize,
    /// Channels C.
    pub c: usize,
    /// Spatial size H*W.
    pub hw: usize,
}

impl BatchNormShape {
    /// Checks the buffers and returns (n, c, hw) as kernel counts.
    fn check(&self, x_len: usize, per_channel: &[(&str, usize)]) -> Result<(u32, u32, u32)> {
        let total = kernel_count("x", self.n.saturating_mul(self.c).saturating_mul(self.hw))?;
        check_len("x", x_len, total as usize)?;
        for (what, len) in per_channel {
            check_len(what, *len, self.c)?;
        }
        if total == 0 {
            return Err(shape_error("batch_norm2d of an empty tensor"));
        }
        Ok((self.n as u32, self.c as u32, self.hw as u32))
    }
}

/// Training forward: batch statistics, y = (x - mean) invstd gamma + beta, running stats
/// updated as running = (1 - momentum) running + momentum stat (unbiased variance).
pub fn batch_norm2d_train_fwd<T: Real>(
    dev: &GpuDevice,
    shape: BatchNormShape,
    x: &CudaSlice<T>,
    gamma: &CudaSlice<T>,
    beta: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    saved_mean: &mut CudaSlice<T>,
    saved_invstd: &mut CudaSlice<T>,
    running_mean: &mut CudaSlice<T>,
    running_var: &mut CudaSlice<T>,
    momentum: T,
    eps: T,
) -> Result<()> {
    let (n, c, hw) = shape.check(
        x.len(),
        &[
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("saved_mean", saved_mean.len()),
            ("saved_invstd", saved_invstd.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
        ],
    )?;
    check_len("y", y.len(), x.len())?;
    let function = dev.function(&BATCH_NORM, "batch_norm2d_train_fwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(x)
        .arg(gamma)
        .arg(beta)
        .arg(y)
        .arg(saved_mean)
        .arg(saved_invstd);
    launch
        .arg(running_mean)
        .arg(running_var)
        .arg(&n)
        .arg(&c)
        .arg(&hw)
        .arg(&momentum)
        .arg(&eps);
    // SAFETY: arguments match the kernel; lengths were checked against the shape.
    unsafe { launch.launch(channel_blocks(c)) }?;
    Ok(())
}

/// Eval forward: y = (x - running_mean) / sqrt(running_var + eps) gamma + beta.
pub fn batch_norm2d_eval_fwd<T: Real>(
    dev: &GpuDevice,
    shape: BatchNormShape,
    x: &CudaSlice<T>,
    gamma: &CudaSlice<T>,
    beta: &CudaSlice<T>,
    running_mean: &CudaSlice<T>,
    running_var: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    saved_mean: &mut CudaSlice<T>,
    saved_invstd: &mut CudaSlice<T>,
    eps: T,
) -> Result<()> {
    let (n, c, hw) = shape.check(
        x.len(),
        &[
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
            ("saved_mean", saved_mean.len()),
            ("saved_invstd", saved_invstd.len()),
        ],
    )?;
    check_len("y", y.len(), x.len())?;
    let function = dev.function(&BATCH_NORM, "batch_norm2d_eval_fwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(x)
        .arg(gamma)
        .arg(beta)
        .arg(running_mean)
        .arg(running_var)
        .arg(y);
    launch
        .arg(saved_mean)
        .arg(saved_invstd)
        .arg(&n)
        .arg(&c)
        .arg(&hw)
        .arg(&eps);
    // SAFETY: arguments match the kernel; lengths were checked against the shape.
    unsafe { launch.launch(grid_for(n * c * hw)) }?;
    Ok(())
}

/// Backward: dx, dgamma = sum(dy xhat), dbeta = sum(dy), from the saved statistics.
/// `batch_stats` says whether the forward used the batch's statistics (training), whose
/// dependence on x adds the mean terms to dx; with running statistics they are constants.
pub fn batch_norm2d_bwd<T: Real>(
    dev: &GpuDevice,
    shape: BatchNormShape,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    gamma: &CudaSlice<T>,
    saved_mean: &CudaSlice<T>,
    saved_invstd: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    dgamma: &mut CudaSlice<T>,
    dbeta: &mut CudaSlice<T>,
    batch_stats: bool,
) -> Result<()> {
    let (n, c, hw) = shape.check(
        x.len(),
        &[
            ("gamma", gamma.len()),
            ("saved_mean", saved_mean.len()),
            ("saved_invstd", saved_invstd.len()),
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
        ],
    )?;
    check_len("dy", dy.len(), x.len())?;
    check_len("dx", dx.len(), x.len())?;
    let batch_stats = i32::from(batch_stats);
    let function = dev.function(&BATCH_NORM, "batch_norm2d_bwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(x)
        .arg(dy)
        .arg(gamma)
        .arg(saved_mean)
        .arg(saved_invstd)
        .arg(dx)
        .arg(dgamma);
    launch.arg(dbeta).arg(&n).arg(&c).arg(&hw).arg(&batch_stats);
    // SAFETY: arguments match the kernel; lengths were checked against the shape.
    unsafe { launch.launch(channel_blocks(c)) }?;
    Ok(())
}

/// One block per channel: the per-channel sums stay inside a block (no atomics).
fn channel_blocks(channels: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (channels, 1, 1),
        block_dim: (BLOCK_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}
