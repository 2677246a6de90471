//! The fused ops of a ResNet block on the GPU (the ops of `ops/fused.rs`): `add_relu` is
//! one kernel (`cuda/kernels/fused.cu`); batch norm + ReLU is composed of the batch-norm
//! kernels and the ReLU ones (`batch_norm.cu`, `elementwise.cu`), keeping the output as
//! the backward's mask (`y > 0` exactly where `z > 0`).
use super::{batch_norm, GpuFloat, GpuResult};
use crate::backend::{BatchNormDims, BatchNormStats};
use arbor_cuda::ops::elementwise::{binary, unary_fwd, BinaryOp, UnaryOp};
use arbor_cuda::ops::fused::add_relu_fwd;
use arbor_cuda::{CudaSlice, GpuDevice};

/// `max(a + b, 0)` of two buffers of one length.
pub(super) fn add_relu<T: GpuFloat>(
    dev: &GpuDevice,
    a: &CudaSlice<T>,
    b: &CudaSlice<T>,
) -> GpuResult<CudaSlice<T>> {
    let mut y = dev.alloc_zeros::<T>(a.len())?;
    add_relu_fwd(dev, a, b, &mut y)?;
    Ok(y)
}

/// `max(z, 0)` of `z` in place of a new buffer.
fn relu<T: GpuFloat>(dev: &GpuDevice, z: &CudaSlice<T>) -> GpuResult<CudaSlice<T>> {
    let mut y = dev.alloc_zeros::<T>(z.len())?;
    unary_fwd(dev, UnaryOp::Relu, z, &mut y)?;
    Ok(y)
}

/// Training forward: `y = max(z, 0)` of batch norm's `z`, and its statistics.
pub(super) fn batch_norm2d_relu_train<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    gamma: &CudaSlice<T>,
    beta: &CudaSlice<T>,
    d: &BatchNormDims,
    eps: f64,
) -> GpuResult<(CudaSlice<T>, BatchNormStats<CudaSlice<T>>)> {
    let (z, stats) = batch_norm::train(dev, x, gamma, beta, d, eps)?;
    Ok((relu(dev, &z)?, stats))
}

/// Evaluation forward from `[x, gamma, beta, running_mean, running_var]`.
pub(super) fn batch_norm2d_relu_eval<T: GpuFloat>(
    dev: &GpuDevice,
    inputs: [&CudaSlice<T>; 5],
    d: &BatchNormDims,
    eps: f64,
) -> GpuResult<CudaSlice<T>> {
    relu(dev, &batch_norm::eval(dev, inputs, d, eps)?)
}

/// `(dx, dgamma, dbeta)` from `[dy, x, gamma, mean, inv_std]` and the forward's output
/// `y`: batch norm's backward of `dy [y > 0]`.
pub(super) fn batch_norm2d_relu_backward<T: GpuFloat>(
    dev: &GpuDevice,
    [dy, x, gamma, mean, inv_std]: [&CudaSlice<T>; 5],
    y: &CudaSlice<T>,
    d: &BatchNormDims,
) -> GpuResult<(CudaSlice<T>, CudaSlice<T>, CudaSlice<T>)> {
    let shape = [dy.len()];
    let mut dz = dev.alloc_zeros::<T>(dy.len())?;
    binary(dev, BinaryOp::ReluGrad, y, &shape, dy, &shape, &mut dz)?;
    batch_norm::backward(dev, [&dz, x, gamma, mean, inv_std], d)
}
