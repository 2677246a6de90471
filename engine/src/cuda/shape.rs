//! Shapes (the ops of `ops/shape.rs`): reshape shares the buffer, so the one op with work
//! is permute, a strided copy (`memory.cu`'s `copy`); there is no shape kernel file.
use super::{GpuFloat, GpuResult};
use crate::backend::StridedWalk;
use crate::Shape;
use arbor_cuda::ops::memory::{copy_strided, StridedView};
use arbor_cuda::{CudaSlice, GpuDevice};

pub(super) fn permute<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    shape: &Shape,
    perm: &[usize],
) -> GpuResult<CudaSlice<T>> {
    let walk = StridedWalk::permute(shape, perm);
    let view = strided_view(&walk);
    let mut y = dev.alloc_zeros::<T>(x.len())?;
    copy_strided(dev, x, &view, &mut y)?;
    Ok(y)
}

/// The kernels' form of `walk`, borrowing its vectors.
pub(super) fn strided_view(walk: &StridedWalk) -> StridedView<'_> {
    StridedView {
        shape: &walk.dims,
        strides: &walk.strides,
        offset: walk.offset,
    }
}
