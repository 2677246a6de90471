//! Reductions over one axis (`cuda/kernels/reduce.cu`), viewing the tensor as
//! `[outer, axis, inner]`.
use super::{GpuFloat, GpuResult};
use crate::backend::ReduceOp;
use crate::Shape;
use arbor_cuda::ops::{reduce, AxisDims};
use arbor_cuda::{CudaSlice, GpuDevice};

/// One-axis reduction of `x` (shaped `shape`) to `[outer, inner]`.
pub(super) fn reduce_axis<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    op: ReduceOp,
    shape: &Shape,
    axis: usize,
) -> GpuResult<CudaSlice<T>> {
    let dims = AxisDims::of(shape.dims(), axis)?;
    let mut y = dev.alloc_zeros::<T>(dims.outer * dims.inner)?;
    match op {
        ReduceOp::Sum => reduce::sum_axis(dev, x, &mut y, dims)?,
        ReduceOp::LogSumExp => reduce::logsumexp_axis(dev, x, &mut y, dims)?,
        ReduceOp::Max => {
            // The engine's max backward recomputes its mask, so the argmax is dropped.
            let mut argmax = dev.alloc_zeros::<i32>(y.len())?;
            reduce::max_axis(dev, x, &mut y, &mut argmax, dims)?;
        }
    }
    Ok(y)
}
