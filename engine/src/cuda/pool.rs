//! Max and average pooling (`cuda/kernels/pool.cu`). The max backward recomputes the
//! argmax from the input, as the CPU backend does, rather than keeping it from the forward.
use super::{GpuFloat, GpuResult};
use crate::backend::Pool2dParams;
use arbor_cuda::ops::pool::{avg_pool2d_bwd, avg_pool2d_fwd, max_pool2d_bwd, max_pool2d_fwd};
use arbor_cuda::ops::window::Window2d;
use arbor_cuda::{CudaSlice, GpuDevice};

fn window(p: &Pool2dParams) -> GpuResult<Window2d> {
    Window2d::new(
        [p.batch, p.channels, p.h_in, p.w_in],
        [p.kernel.0, p.kernel.1],
        [p.stride.0, p.stride.1],
        [p.padding.0, p.padding.1],
    )
}

/// `y` and the argmax of every window.
pub(super) fn max_forward<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    p: &Pool2dParams,
) -> GpuResult<(CudaSlice<T>, CudaSlice<i32>)> {
    let g = window(p)?;
    let mut y = dev.alloc_zeros::<T>(g.output_len())?;
    let mut argmax = dev.alloc_zeros::<i32>(g.output_len())?;
    max_pool2d_fwd(dev, &g, x, &mut y, &mut argmax)?;
    Ok((y, argmax))
}

pub(super) fn max_backward<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    p: &Pool2dParams,
) -> GpuResult<CudaSlice<T>> {
    let (_, argmax) = max_forward(dev, x, p)?;
    let mut dx = dev.alloc_zeros::<T>(x.len())?;
    max_pool2d_bwd(dev, &window(p)?, dy, &argmax, &mut dx)?;
    Ok(dx)
}

pub(super) fn avg_forward<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    p: &Pool2dParams,
) -> GpuResult<CudaSlice<T>> {
    let g = window(p)?;
    let mut y = dev.alloc_zeros::<T>(g.output_len())?;
    avg_pool2d_fwd(dev, &g, x, &mut y)?;
    Ok(y)
}

pub(super) fn avg_backward<T: GpuFloat>(
    dev: &GpuDevice,
    dy: &CudaSlice<T>,
    p: &Pool2dParams,
) -> GpuResult<CudaSlice<T>> {
    let g = window(p)?;
    let mut dx = dev.alloc_zeros::<T>(g.input_len())?;
    avg_pool2d_bwd(dev, &g, dy, &mut dx)?;
    Ok(dx)
}
