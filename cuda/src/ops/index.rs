//! Indexing along one axis (`kernels/index.cu`); x is viewed as [outer, axis, inner]
//! ([`AxisDims`]) and the result as [outer, count, inner].
//!
//! The backwards scatter-add into dx, since an index may repeat: they **accumulate**, so
//! pass a zero-filled dx (or a gradient to add to). Indices must be in `0..axis`; the
//! caller validates them on the host (an out-of-range index reads 0 and is skipped in the
//! backward, so it cannot touch foreign memory, but it is not reported).

use super::{check_len, grid_for, kernel_count, AxisDims};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
use crate::kernels::INDEX;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// `y[o, k, i] = x[o, idx[k], i]` for `k in 0..idx.len()`.
pub fn index_select_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    dims: AxisDims,
    idx: &CudaSlice<i32>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    let count = idx.len();
    check_len("x", x.len(), dims.len())?;
    check_len("y", y.len(), dims.outer * count * dims.inner)?;
    launch("index_select_fwd", dev, x, idx, y, dims, count)
}

/// `dx[o, idx[k], i] += dy[o, k, i]`; the adjoint of [`index_select_fwd`].
pub fn index_select_bwd<T: Real>(
    dev: &GpuDevice,
    dy: &CudaSlice<T>,
    idx: &CudaSlice<i32>,
    dx: &mut CudaSlice<T>,
    dims: AxisDims,
) -> Result<()> {
    let count = idx.len();
    check_len("dx", dx.len(), dims.len())?;
    check_len("dy", dy.len(), dims.outer * count * dims.inner)?;
    launch("index_select_bwd", dev, dy, idx, dx, dims, count)
}

/// y[o, k, i] = x[o, idx[o, k, i], i]: `idx` and `y` have shape [outer, count, inner]
/// (e.g. each row's target logit: x [B, C], axis 1, idx [B, 1]).
pub fn gather_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    dims: AxisDims,
    idx: &CudaSlice<i32>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("x", x.len(), dims.len())?;
    let count = gathered_count(idx.len(), dims)?;
    check_len("y", y.len(), idx.len())?;
    launch("gather_fwd", dev, x, idx, y, dims, count)
}

/// dx[o, idx[o, k, i], i] += dy[o, k, i]; the adjoint of [`gather_fwd`].
pub fn gather_bwd<T: Real>(
    dev: &GpuDevice,
    dy: &CudaSlice<T>,
    idx: &CudaSlice<i32>,
    dx: &mut CudaSlice<T>,
    dims: AxisDims,
) -> Result<()> {
    check_len("dx", dx.len(), dims.len())?;
    let count = gathered_count(idx.len(), dims)?;
    check_len("dy", dy.len(), idx.len())?;
    launch("gather_bwd", dev, dy, idx, dx, dims, count)
}

/// `count` of a gather whose index tensor has `idx_len` = outer * count * inner elements.
fn gathered_count(idx_len: usize, dims: AxisDims) -> Result<usize> {
    let slab = dims.outer * dims.inner;
    if slab == 0 {
        return Ok(0);
    }
    if !idx_len.is_multiple_of(slab) {
        return Err(shape_error(format!(
            "gather index has {idx_len} elements, not a multiple of outer * inner = {slab}"
        )));
    }
    Ok(idx_len / slab)
}

/// Launches one of the four kernels, which share the parameter list
/// (src, idx, dst, outer, axis, count, inner).
fn launch<T: Real>(
    kernel: &'static str,
    dev: &GpuDevice,
    src: &CudaSlice<T>,
    idx: &CudaSlice<i32>,
    dst: &mut CudaSlice<T>,
    dims: AxisDims,
    count: usize,
) -> Result<()> {
    kernel_count("indexed tensor", dims.len())?;
    let n = kernel_count("selection", dims.outer * count * dims.inner)?;
    if n == 0 {
        return Ok(());
    }
    let (outer, axis, count, inner) = (
        dims.outer as u32,
        dims.axis as u32,
        count as u32,
        dims.inner as u32,
    );
    let function = dev.function(&INDEX, kernel, "", T::SUFFIX)?;
    let mut builder = dev.stream().launch_builder(&function);
    builder
        .arg(src)
        .arg(idx)
        .arg(dst)
        .arg(&outer)
        .arg(&axis)
        .arg(&count)
        .arg(&inner);
    // SAFETY: arguments match the kernel; lengths were checked by the caller, and the
    // kernel skips out-of-range indices.
    unsafe { builder.launch(grid_for(n)) }?;
    Ok(())
}
