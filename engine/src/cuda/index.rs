//! Indexing (the ops of `ops/index.rs`): stepped slices and their backward as strided
//! copies (`memory.cu`), channel padding, index-select, gather and concat (`index.cu`), and
//! their scatter backwards. Host index lists are uploaded as the kernels' `i32`.
use super::shape::strided_view;
use super::{zeros, GpuFloat, GpuResult};
use crate::backend::{SliceRange, StridedWalk};
use crate::Shape;
use arbor_cuda::ops::index::{
    self as kernels, channel_pad_subsample_fwd, concat_fwd, PadSubsample,
};
use arbor_cuda::ops::memory::{copy_into_strided, copy_strided};
use arbor_cuda::ops::AxisDims;
use arbor_cuda::{CudaSlice, Error, GpuDevice};

pub(super) fn slice<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    shape: &Shape,
    ranges: &[SliceRange],
) -> GpuResult<CudaSlice<T>> {
    let walk = StridedWalk::slice(shape, ranges);
    let view = strided_view(&walk);
    let mut y = dev.alloc_zeros::<T>(walk.dims.iter().product())?;
    copy_strided(dev, x, &view, &mut y)?;
    Ok(y)
}

/// The gradient `g` of a slice written into zeros of `shape`. Slices have steps >= 1, so
/// no element is written twice (`copy_into_strided` refuses views that would).
pub(super) fn slice_backward<T: GpuFloat>(
    dev: &GpuDevice,
    g: &CudaSlice<T>,
    shape: &Shape,
    ranges: &[SliceRange],
) -> GpuResult<CudaSlice<T>> {
    let walk = StridedWalk::slice(shape, ranges);
    let view = strided_view(&walk);
    let mut dx = zeros(dev, shape.numel())?;
    copy_into_strided(dev, g, &view, &mut dx)?;
    Ok(dx)
}

/// `[n, c, ...]` to `[n, before + c + after, ...]`: the option-A shortcut kernel with
/// stride 1, the trailing dimensions folded into one.
pub(super) fn pad_channels<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    shape: &Shape,
    before: usize,
    after: usize,
) -> GpuResult<CudaSlice<T>> {
    let d = shape.dims();
    let (n, c, rest) = (d[0], d[1], d[2..].iter().product::<usize>());
    let geometry = PadSubsample::new([n, c, rest, 1], c + before + after, before, 1)?;
    let mut y = dev.alloc_zeros::<T>(geometry.output_len())?;
    channel_pad_subsample_fwd(dev, &geometry, x, &mut y)?;
    Ok(y)
}

/// Host indices as the kernels' `i32`, uploaded.
fn upload_indices(dev: &GpuDevice, idx: &[usize]) -> GpuResult<CudaSlice<i32>> {
    let converted: Option<Vec<i32>> = idx.iter().map(|&i| i32::try_from(i).ok()).collect();
    let converted =
        converted.ok_or_else(|| Error::TooLarge("an index does not fit in i32".into()))?;
    dev.upload(&converted)
}

pub(super) fn index_select<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    shape: &Shape,
    axis: usize,
    idx: &[usize],
) -> GpuResult<CudaSlice<T>> {
    let dims = AxisDims::of(shape.dims(), axis)?;
    let idx = upload_indices(dev, idx)?;
    let mut y = dev.alloc_zeros::<T>(dims.outer * idx.len() * dims.inner)?;
    kernels::index_select_fwd(dev, x, dims, &idx, &mut y)?;
    Ok(y)
}

pub(super) fn index_add<T: GpuFloat>(
    dev: &GpuDevice,
    g: &CudaSlice<T>,
    shape: &Shape,
    axis: usize,
    idx: &[usize],
) -> GpuResult<CudaSlice<T>> {
    let dims = AxisDims::of(shape.dims(), axis)?;
    let idx = upload_indices(dev, idx)?;
    let mut dx = zeros(dev, shape.numel())?;
    kernels::index_select_bwd(dev, g, &idx, &mut dx, dims)?;
    Ok(dx)
}

pub(super) fn gather<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    shape: &Shape,
    axis: usize,
    idx: &[usize],
    idx_shape: &Shape,
) -> GpuResult<CudaSlice<T>> {
    let dims = AxisDims::of(shape.dims(), axis)?;
    check_gather_shape(shape, axis, idx_shape)?;
    let idx = upload_indices(dev, idx)?;
    let mut y = dev.alloc_zeros::<T>(idx.len())?;
    kernels::gather_fwd(dev, x, dims, &idx, &mut y)?;
    Ok(y)
}

pub(super) fn scatter_add<T: GpuFloat>(
    dev: &GpuDevice,
    g: &CudaSlice<T>,
    shape: &Shape,
    axis: usize,
    idx: &[usize],
    idx_shape: &Shape,
) -> GpuResult<CudaSlice<T>> {
    let dims = AxisDims::of(shape.dims(), axis)?;
    check_gather_shape(shape, axis, idx_shape)?;
    let idx = upload_indices(dev, idx)?;
    let mut dx = zeros(dev, shape.numel())?;
    kernels::gather_bwd(dev, g, &idx, &mut dx, dims)?;
    Ok(dx)
}

/// The kernels read the index tensor as `[outer, count, inner]` of the input's `outer` and
/// `inner`: the index shape must match the input's except along `axis` (as `ops` ensures).
fn check_gather_shape(shape: &Shape, axis: usize, idx_shape: &Shape) -> GpuResult<()> {
    let (x, i) = (shape.dims(), idx_shape.dims());
    let same = x.len() == i.len() && (0..x.len()).all(|d| d == axis || x[d] == i[d]);
    if same {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "gather index shape {i:?} must match input {x:?} except along axis {axis}"
        )))
    }
}

pub(super) fn concat<T: GpuFloat>(
    dev: &GpuDevice,
    parts: &[&CudaSlice<T>],
    shapes: &[Shape],
    axis: usize,
) -> GpuResult<CudaSlice<T>> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let y_axis: usize = shapes.iter().map(|s| s.dims()[axis]).sum();
    let mut y = dev.alloc_zeros::<T>(total)?;
    let mut offset = 0;
    for (part, shape) in parts.iter().zip(shapes) {
        let dims = AxisDims::of(shape.dims(), axis)?;
        concat_fwd(dev, part, dims, &mut y, y_axis, offset)?;
        offset += dims.axis;
    }
    Ok(y)
}
