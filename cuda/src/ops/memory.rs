//! Filling, strided copies and type conversion (`kernels/memory.cu`). Plain
//! device-to-device copies are [`GpuDevice::copy`].

use super::layout::{contiguous_strides, kernel_layout};
use super::{check_len, grid_for, kernel_count, product};
use crate::device::GpuDevice;
use crate::dtype::{DType, Real};
use crate::error::{shape_error, Result};
use crate::kernels::MEMORY;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// `y[i] = value` for every element.
pub fn fill<T: Real>(dev: &GpuDevice, y: &mut CudaSlice<T>, value: T) -> Result<()> {
    let n = kernel_count("y", y.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&MEMORY, "fill", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(y).arg(&n).arg(&value);
    // SAFETY: arguments match `fill`; y holds n elements.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// A strided view into a buffer: element `[i0, i1, ..]` of the view is
/// `buffer[offset + i0*strides[0] + i1*strides[1] + ..]`. Transposes, permutes, stepped
/// slices and broadcasts (stride 0) are all such views.
#[derive(Clone, Copy, Debug)]
pub struct StridedView<'a> {
    /// The view's shape.
    pub shape: &'a [usize],
    /// Element strides, one per dimension.
    pub strides: &'a [usize],
    /// Element offset of the view's first element.
    pub offset: usize,
}

/// y (contiguous, the view's shape) = the elements of the view `view` of `x`.
pub fn copy_strided<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    view: &StridedView,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    if view.shape.len() != view.strides.len() {
        return Err(shape_error(format!(
            "view shape {:?} with strides {:?}",
            view.shape, view.strides
        )));
    }
    let n = product("view", view.shape)?;
    check_len("y", y.len(), n as usize)?;
    if n == 0 {
        return Ok(());
    }
    let last = view.offset
        + view
            .shape
            .iter()
            .zip(view.strides)
            .map(|(&d, &s)| (d - 1) * s)
            .sum::<usize>();
    if last >= x.len() {
        return Err(shape_error(format!(
            "view reaches element {last} of a buffer of {}",
            x.len()
        )));
    }
    kernel_count("x", x.len())?;
    let y_strides = contiguous_strides(view.shape);
    let (dims, [x_strides, _]) = kernel_layout(view.shape, [view.strides, &y_strides])?;
    let source = x.slice(view.offset..);
    let function = dev.function(&MEMORY, "copy", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(&source)
        .arg(&x_strides)
        .arg(y)
        .arg(&dims)
        .arg(&n);
    // SAFETY: arguments match `copy`; the furthest element the view reaches is inside x.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// y = x converted to `To` (round to nearest even), for any pair of f32, f64, f16, bf16.
pub fn cast<From: DType, To: DType>(
    dev: &GpuDevice,
    x: &CudaSlice<From>,
    y: &mut CudaSlice<To>,
) -> Result<()> {
    check_len("y", y.len(), x.len())?;
    let n = kernel_count("x", x.len())?;
    if n == 0 {
        return Ok(());
    }
    // Kernel `cast_<from>_<to>`: the source type sits in the variant slot of the name.
    let function = dev.function(&MEMORY, "cast", From::SUFFIX, To::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(&n);
    // SAFETY: arguments match `cast_<from>_<to>`; both buffers hold n elements.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
