//! conv2d as im2col + GEMM (`kernels/conv.cu`).
//!
//! Forward: `im2col` turns x [N, C, H, W] into col [N, C*KH*KW, OH*OW]; then
//! `out[n] = weight [OC, C*KH*KW] x col[n]` for each image, one strided-batched
//! [`crate::ops::matmul::gemm`] with the weight's batch stride 0.
//! Backward: `dcol[n] = weight^T x dout[n]`, then `col2im` sums dcol back into dx;
//! `dweight = sum_n dout[n] x col[n]^T`.
//! The `_images` variants work on a chunk of a larger batch, so the column buffer can be
//! sized for a chunk of images rather than the whole batch.

use super::window::Window2d;
use super::{check_len, grid_for, kernel_count};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
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
    im2col_images(dev, geometry, x, 0, col)
}

/// [`im2col`] of images `first .. first + geometry.n` of a larger batch `x`, so that a
/// convolution can run in chunks of images with a column buffer sized for one chunk.
pub fn im2col_images<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    x: &CudaSlice<T>,
    first: usize,
    col: &mut CudaSlice<T>,
) -> Result<()> {
    let start = images_start("x", geometry, x.len(), first)?;
    check_len("col", col.len(), geometry.col_len())?;
    let n = kernel_count("col", col.len())?;
    if n == 0 {
        return Ok(());
    }
    let images = x.slice(start..);
    let function = dev.function(&CONV, "im2col", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(&images).arg(col).arg(geometry);
    // SAFETY: arguments match `im2col`; the chunk of images and col match the geometry.
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
    check_len("dx", dx.len(), geometry.input_len())?;
    col2im_images(dev, geometry, col, dx, 0)
}

/// [`col2im`] into images `first .. first + geometry.n` of a larger batch `dx`; the other
/// images are left as they were.
pub fn col2im_images<T: Real>(
    dev: &GpuDevice,
    geometry: &Window2d,
    col: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    first: usize,
) -> Result<()> {
    let start = images_start("dx", geometry, dx.len(), first)?;
    check_len("col", col.len(), geometry.col_len())?;
    // The kernel indexes col with 32-bit arithmetic too.
    kernel_count("col", col.len())?;
    let n = kernel_count("dx", geometry.input_len())?;
    if n == 0 {
        return Ok(());
    }
    let mut images = dx.slice_mut(start..);
    let function = dev.function(&CONV, "col2im", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(col).arg(&mut images).arg(geometry);
    // SAFETY: arguments match `col2im`; the chunk of images and col match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// Offset of image `first` in a batch buffer of `len` elements holding images of the
/// geometry's size, after checking that images `first .. first + n` fit in it.
fn images_start(what: &str, geometry: &Window2d, len: usize, first: usize) -> Result<usize> {
    let image = geometry.input_len() / (geometry.n.max(1) as usize);
    let end = (first + geometry.n as usize) * image;
    if end > len {
        return Err(shape_error(format!(
            "{what} has {len} elements, images {first}..{} of {image} need {end}",
            first + geometry.n as usize
        )));
    }
    Ok(first * image)
}
