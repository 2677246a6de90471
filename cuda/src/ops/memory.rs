//! Filling, strided copies and type conversion (`kernels/memory.cu`): buffer work that no
//! one op family owns. The strided copy is permute's kernel (`ops/shape.rs` in the engine),
//! the stepped slices' and their backward's (`ops/index.rs`), and broadcast expansion's;
//! fill and cast serve the engine's storages. Plain device-to-device copies are
//! [`GpuDevice::copy`].

use super::strides::{contiguous_strides, to_dims6};
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
    let n = check_view(view, x.len())?;
    check_len("y", y.len(), n as usize)?;
    if n == 0 {
        return Ok(());
    }
    let y_strides = contiguous_strides(view.shape);
    let (dims, [x_strides, _]) = to_dims6(view.shape, [view.strides, &y_strides])?;
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

/// The view `view` of `y` (which must address each element at most once) gets the
/// contiguous `x`, of the view's shape; the rest of `y` is left as it was. The adjoint of
/// [`copy_strided`] for such views: a stepped slice's backward into a zeroed `y`.
pub fn copy_into_strided<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    view: &StridedView,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    let n = check_view(view, y.len())?;
    check_len("x", x.len(), n as usize)?;
    if n == 0 {
        return Ok(());
    }
    if !addresses_each_element_once(view) {
        return Err(shape_error(format!(
            "view shape {:?} with strides {:?} writes some element twice",
            view.shape, view.strides
        )));
    }
    let x_strides = contiguous_strides(view.shape);
    let (dims, [y_strides, _]) = to_dims6(view.shape, [view.strides, &x_strides])?;
    let mut target = y.slice_mut(view.offset..);
    let function = dev.function(&MEMORY, "copy_into", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(x)
        .arg(&mut target)
        .arg(&y_strides)
        .arg(&dims)
        .arg(&n);
    // SAFETY: arguments match `copy_into`; the furthest element the view reaches is inside
    // y and no two threads write the same element.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}

/// Checks that a view's shape and strides agree and that it stays inside a buffer of
/// `buffer_len` elements; returns its element count (0 for an empty view).
fn check_view(view: &StridedView, buffer_len: usize) -> Result<u32> {
    if view.shape.len() != view.strides.len() {
        return Err(shape_error(format!(
            "view shape {:?} with strides {:?}",
            view.shape, view.strides
        )));
    }
    let n = product("view", view.shape)?;
    if n == 0 {
        return Ok(0);
    }
    let last = view.offset
        + view
            .shape
            .iter()
            .zip(view.strides)
            .map(|(&d, &s)| (d - 1) * s)
            .sum::<usize>();
    if last >= buffer_len {
        return Err(shape_error(format!(
            "view reaches element {last} of a buffer of {buffer_len}"
        )));
    }
    kernel_count("buffer", buffer_len)?;
    Ok(n)
}

/// Whether no two indices of the view map to the same offset: with the dimensions sorted
/// by stride, each stride must step past everything the smaller ones can reach.
fn addresses_each_element_once(view: &StridedView) -> bool {
    let mut dims: Vec<(usize, usize)> = view
        .strides
        .iter()
        .copied()
        .zip(view.shape.iter().copied())
        .filter(|&(_, d)| d > 1)
        .collect();
    dims.sort_unstable();
    let mut reach = 0; // the largest offset the dimensions so far can add
    for (stride, d) in dims {
        if stride <= reach {
            return false;
        }
        reach += (d - 1) * stride;
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(shape: &'a [usize], strides: &'a [usize]) -> StridedView<'a> {
        StridedView {
            shape,
            strides,
            offset: 0,
        }
    }

    #[test]
    fn overlapping_views_are_recognised() {
        assert!(addresses_each_element_once(&view(&[2, 3], &[3, 1])));
        assert!(addresses_each_element_once(&view(&[2, 2], &[8, 2])));
        assert!(addresses_each_element_once(&view(&[4, 1], &[1, 0])));
        assert!(!addresses_each_element_once(&view(&[2, 3], &[0, 1])));
        assert!(!addresses_each_element_once(&view(&[2, 3], &[2, 1])));
    }

    #[test]
    fn views_must_stay_inside_the_buffer() {
        assert_eq!(check_view(&view(&[2, 3], &[3, 1]), 6).unwrap(), 6);
        assert!(check_view(&view(&[2, 3], &[3, 1]), 5).is_err());
        assert_eq!(check_view(&view(&[0, 3], &[3, 1]), 0).unwrap(), 0);
        assert!(check_view(&view(&[2], &[3, 1]), 9).is_err());
    }
}
