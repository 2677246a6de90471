//! Softmax and log-softmax over the rows of a `[rows, cols]` view
//! (`cuda/kernels/softmax.cu`): a warp per row up to 1024 columns, a block beyond.
use super::{GpuFloat, GpuResult};
use arbor_cuda::ops::softmax as kernels;
use arbor_cuda::{CudaSlice, GpuDevice};

pub(super) fn forward<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    log: bool,
) -> GpuResult<CudaSlice<T>> {
    let mut y = dev.alloc_zeros::<T>(x.len())?;
    if log {
        kernels::log_softmax_fwd(dev, x, &mut y, rows, cols)?;
    } else {
        kernels::softmax_fwd(dev, x, &mut y, rows, cols)?;
    }
    Ok(y)
}

/// dL/dx from the forward's output `y` and dL/dy.
pub(super) fn backward<T: GpuFloat>(
    dev: &GpuDevice,
    y: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    rows: usize,
    cols: usize,
    log: bool,
) -> GpuResult<CudaSlice<T>> {
    let mut dx = dev.alloc_zeros::<T>(y.len())?;
    if log {
        kernels::log_softmax_bwd(dev, y, dy, &mut dx, rows, cols)?;
    } else {
        kernels::softmax_bwd(dev, y, dy, &mut dx, rows, cols)?;
    }
    Ok(dx)
}
