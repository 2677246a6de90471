//! 2-D pooling over NCHW (`kernels/pool.cu`): max pooling with saved argmax, average
//! pooling (padding counted in the divisor, PyTorch's default). Backward kernels overwrite
//! dx. (Global average pooling is a mean over the spatial axes in the engine.)

use super::window::Window2d;
use super::{check_len, grid_for, kernel_count};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::Result;
use crate::kernels::POOL;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// y = max over each window; `argmax` gets the flat index iy*W + ix of the maximum within
/// its (n, c) plane, -1 for a window wholly in the padding.
pub fn max_pool2d_fwd<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    argmax: &mut CudaSlice<i32>,
) -> Result<()> {
    check_len("x", x.len(), geometry.input_len())?;
    check_len("y", y.len(), geometry.output_len())?;
    check_len("argmax", argmax.len(), geometry.output_len())?;
    kernel_count("x", x.len())?;
    let n = kernel_count("y", y.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&POOL, "max_pool2d_fwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(argmax).arg(geometry);
    // SAFETY: arguments match `max_pool2d_fwd`; lengths match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// `dx[p]` = sum of `dy` over the windows whose argmax is `p`.
pub fn max_pool2d_bwd<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    dy: &CudaSlice<T>,
    argmax: &CudaSlice<i32>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("dy", dy.len(), geometry.output_len())?;
    check_len("argmax", argmax.len(), geometry.output_len())?;
    check_len("dx", dx.len(), geometry.input_len())?;
    kernel_count("dy", dy.len())?;
    let n = kernel_count("dx", dx.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&POOL, "max_pool2d_bwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(dy).arg(argmax).arg(dx).arg(geometry);
    // SAFETY: arguments match `max_pool2d_bwd`; lengths match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// y = mean over each window, dividing by KH*KW even where the window overlaps padding.
pub fn avg_pool2d_fwd<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("x", x.len(), geometry.input_len())?;
    check_len("y", y.len(), geometry.output_len())?;
    kernel_count("x", x.len())?;
    let n = kernel_count("y", y.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&POOL, "avg_pool2d_fwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(geometry);
    // SAFETY: arguments match `avg_pool2d_fwd`; lengths match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// `dx[p]` = sum of `dy / (KH*KW)` over the windows covering `p`.
pub fn avg_pool2d_bwd<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("dy", dy.len(), geometry.output_len())?;
    check_len("dx", dx.len(), geometry.input_len())?;
    kernel_count("dy", dy.len())?;
    let n = kernel_count("dx", dx.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&POOL, "avg_pool2d_bwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(dy).arg(dx).arg(geometry);
    // SAFETY: arguments match `avg_pool2d_bwd`; lengths match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
