//! batch_norm2d (`cuda/kernels/batch_norm.cu`): one block per channel for the training
//! forward and the backward, so the channel sums need no atomics.
use super::{GpuFloat, GpuResult};
use crate::backend::{BatchNormDims, BatchNormStats};
use arbor_cuda::ops::batch_norm::{
    batch_norm2d_bwd, batch_norm2d_eval_fwd, batch_norm2d_train_fwd, BatchNormShape,
};
use arbor_cuda::ops::elementwise::affine_fwd;
use arbor_cuda::{CudaSlice, GpuDevice};

fn shape(d: &BatchNormDims) -> BatchNormShape {
    BatchNormShape {
        n: d.n,
        c: d.c,
        hw: d.hw,
    }
}

/// Training forward: `y` and the batch's mean, biased variance and `1/sqrt(var + eps)`.
///
/// The kernel moves running statistics toward the batch's mean and *unbiased* variance;
/// the engine updates its running statistics itself (in `ops/batch_norm.rs`), so here the
/// kernel gets scratch running buffers and momentum 1, which leaves exactly the batch's
/// mean and unbiased variance in them. The biased variance is that times `(m - 1) / m`.
pub(super) fn train<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    gamma: &CudaSlice<T>,
    beta: &CudaSlice<T>,
    d: &BatchNormDims,
    eps: f64,
) -> GpuResult<(CudaSlice<T>, BatchNormStats<CudaSlice<T>>)> {
    let mut y = dev.alloc_zeros::<T>(x.len())?;
    let mut mean = dev.alloc_zeros::<T>(d.c)?;
    let mut inv_std = dev.alloc_zeros::<T>(d.c)?;
    let mut batch_mean = dev.alloc_zeros::<T>(d.c)?;
    let mut unbiased = dev.alloc_zeros::<T>(d.c)?;
    batch_norm2d_train_fwd(
        dev,
        shape(d),
        x,
        gamma,
        beta,
        &mut y,
        &mut mean,
        &mut inv_std,
        &mut batch_mean,
        &mut unbiased,
        T::ONE,
        T::from_f64(eps),
    )?;
    let m = (d.n * d.hw) as f64;
    let mut var = dev.alloc_zeros::<T>(d.c)?;
    let to_biased = if m > 1.0 { (m - 1.0) / m } else { 1.0 };
    affine_fwd(dev, &unbiased, &mut var, T::from_f64(to_biased), T::ZERO)?;
    Ok((y, BatchNormStats { mean, var, inv_std }))
}

/// Evaluation forward from `[x, gamma, beta, running_mean, running_var]`.
pub(super) fn eval<T: GpuFloat>(
    dev: &GpuDevice,
    [x, gamma, beta, running_mean, running_var]: [&CudaSlice<T>; 5],
    d: &BatchNormDims,
    eps: f64,
) -> GpuResult<CudaSlice<T>> {
    let mut y = dev.alloc_zeros::<T>(x.len())?;
    // The kernel also saves the statistics it used, for a backward this op does not need.
    let mut mean = dev.alloc_zeros::<T>(d.c)?;
    let mut inv_std = dev.alloc_zeros::<T>(d.c)?;
    batch_norm2d_eval_fwd(
        dev,
        shape(d),
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        &mut y,
        &mut mean,
        &mut inv_std,
        T::from_f64(eps),
    )?;
    Ok(y)
}

/// `(dx, dgamma, dbeta)` from `[dy, x, gamma, mean, inv_std]` of a training forward.
pub(super) fn backward<T: GpuFloat>(
    dev: &GpuDevice,
    [dy, x, gamma, mean, inv_std]: [&CudaSlice<T>; 5],
    d: &BatchNormDims,
) -> GpuResult<(CudaSlice<T>, CudaSlice<T>, CudaSlice<T>)> {
    let mut dx = dev.alloc_zeros::<T>(x.len())?;
    let mut dgamma = dev.alloc_zeros::<T>(d.c)?;
    let mut dbeta = dev.alloc_zeros::<T>(d.c)?;
    batch_norm2d_bwd(
        dev,
        shape(d),
        x,
        dy,
        gamma,
        mean,
        inv_std,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        true,
    )?;
    Ok((dx, dgamma, dbeta))
}
