//! Indexing (`kernels/index.cu`), the kernels of the engine's `ops/index.rs`:
//! index-select and gather along one axis, with their scatter-add backwards; ResNet's
//! option-A shortcut (channel zero-pad + strided subsample); one input's share of a
//! concatenation. x is viewed as [outer, axis, inner] ([`AxisDims`]).
//!
//! The index backwards scatter-add into dx, since an index may repeat: they **accumulate**,
//! so pass a zero-filled dx (or a gradient to add to). Indices must be in `0..axis`; the
//! caller validates them on the host (an out-of-range index reads 0 and is skipped in the
//! backward, so it cannot touch foreign memory, but it is not reported). The shortcut's and
//! concat's backwards are slices of the upstream gradient, which the engine takes with
//! [`super::memory::copy_strided`], so they have no kernels here.

use super::{check_len, grid_for, kernel_count, AxisDims};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
use crate::kernels::INDEX;
use cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};

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

/// Geometry of the option-A shortcut: x [N, Cin, H, W] -> y [N, Cout, OH, OW] with
/// OH = ceil(H / stride), OW = ceil(W / stride), input channel c landing at c + pad.
/// Laid out as `struct PadSubsample` in `index.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadSubsample {
    /// Batch size N.
    pub n: i32,
    /// Input channels.
    pub c_in: i32,
    /// Input height.
    pub h: i32,
    /// Input width.
    pub w: i32,
    /// Output channels, at least pad + c_in.
    pub c_out: i32,
    /// Zero channels before the input's.
    pub pad: i32,
    /// Spatial subsampling step.
    pub stride: i32,
    /// Output height.
    pub out_h: i32,
    /// Output width.
    pub out_w: i32,
}

// SAFETY: plain `repr(C)` integers, the same layout as the CUDA struct.
unsafe impl DeviceRepr for PadSubsample {}

impl PadSubsample {
    /// The shortcut for input `[n, c_in, h, w]` producing `c_out` channels, the input's
    /// placed after `pad` zero channels, subsampled by `stride`.
    pub fn new(input: [usize; 4], c_out: usize, pad: usize, stride: usize) -> Result<Self> {
        let [n, c_in, h, w] = input;
        if stride == 0 || pad + c_in > c_out {
            return Err(shape_error(format!(
                "channel_pad_subsample: stride {stride}, {c_in} channels + pad {pad} into {c_out}"
            )));
        }
        let to_i32 =
            |v: usize| i32::try_from(v).map_err(|_| shape_error(format!("{v} exceeds i32")));
        Ok(Self {
            n: to_i32(n)?,
            c_in: to_i32(c_in)?,
            h: to_i32(h)?,
            w: to_i32(w)?,
            c_out: to_i32(c_out)?,
            pad: to_i32(pad)?,
            stride: to_i32(stride)?,
            out_h: to_i32(h.div_ceil(stride))?,
            out_w: to_i32(w.div_ceil(stride))?,
        })
    }

    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        [self.n, self.c_in, self.h, self.w]
            .iter()
            .map(|&d| d as usize)
            .product()
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        [self.n, self.c_out, self.out_h, self.out_w]
            .iter()
            .map(|&d| d as usize)
            .product()
    }
}

/// y = the shortcut of x (zero channels around the subsampled input).
pub fn channel_pad_subsample_fwd<T: Real>(
    dev: &GpuDevice,
    geometry: &PadSubsample,
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
    let function = dev.function(&INDEX, "channel_pad_subsample_fwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(geometry);
    // SAFETY: arguments match the kernel; lengths match the geometry.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// Writes `x` ([outer, x_axis, inner], `x_dims`) into `y` ([outer, y_axis, inner]) at
/// `offset` along the axis: one input's share of a concatenation.
pub fn concat_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    x_dims: AxisDims,
    y: &mut CudaSlice<T>,
    y_axis: usize,
    offset: usize,
) -> Result<()> {
    check_len("x", x.len(), x_dims.len())?;
    check_len("y", y.len(), x_dims.outer * y_axis * x_dims.inner)?;
    launch_concat("concat_fwd", dev, x, y, x_dims, y_axis, offset)
}

fn launch_concat<T: Real>(
    kernel: &'static str,
    dev: &GpuDevice,
    src: &CudaSlice<T>,
    dst: &mut CudaSlice<T>,
    x_dims: AxisDims,
    y_axis: usize,
    offset: usize,
) -> Result<()> {
    if offset + x_dims.axis > y_axis {
        return Err(shape_error(format!(
            "concat slice {offset}..{} outside an axis of {y_axis}",
            offset + x_dims.axis
        )));
    }
    kernel_count("concat output", x_dims.outer * y_axis * x_dims.inner)?;
    let n = kernel_count("concat input", x_dims.len())?;
    if n == 0 {
        return Ok(());
    }
    let (outer, dim_x, inner) = (x_dims.outer as u32, x_dims.axis as u32, x_dims.inner as u32);
    let (dim_y, offset) = (y_axis as u32, offset as u32);
    let function = dev.function(&INDEX, kernel, "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(src)
        .arg(dst)
        .arg(&outer)
        .arg(&dim_x)
        .arg(&inner)
        .arg(&dim_y)
        .arg(&offset);
    // SAFETY: arguments match the kernel; the slice lies inside the axis (checked).
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
