//! conv2d as im2col + GEMM (`kernels/conv.cu`).
//!
//! Forward: `im2col` turns x [N, C, H, W] into col [N, C*KH*KW, OH*OW]; then
//! `out[n] = weight [OC, C*KH*KW] x col[n]` for each image, one strided-batched
//! [`crate::ops::gemm::gemm`] with the weight's batch stride 0.
//! Backward: `dcol[n] = weight^T x dout[n]`, then `col2im` sums dcol back into dx;
//! `dweight = sum_n dout[n] x col[n]^T`.

use super::window::Window2d;
use super::{check_len, grid_for, kernel_count};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::Result;
use crate::kernels::CONV;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// col[n, (c*KH + ky)*KW + kx, oy*OW + ox] = x[n, c, oy*SH - PH + ky, ox*SW - PW + kx],
/// zero in the padding. `x` has [`Window2d::input_len`] elements, `col`
/// [`Window2d::col_len`].
pub fn im2col<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    x: &CudaSlice<T>,
    col: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("x", x.len(), geometry.input_len())?;
    check_len("col", col.len(), geometry.col_len())?;
    let n = kernel_count("col", col.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&CONV, "im2col", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(col).arg(geometry);
    // SAFETY: arguments match `im2col`; buffer lengths match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// The adjoint of [`im2col`]: dx[n, c, iy, ix] = sum of the col entries copied from it.
/// Overwrites `dx`.
pub fn col2im<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    col: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("col", col.len(), geometry.col_len())?;
    check_len("dx", dx.len(), geometry.input_len())?;
    // The kernel indexes col with 32-bit arithmetic too.
    kernel_count("col", col.len())?;
    let n = kernel_count("dx", dx.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&CONV, "col2im", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(col).arg(dx).arg(geometry);
    // SAFETY: arguments match `col2im`; buffer lengths match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
