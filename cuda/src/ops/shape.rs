//! Data movement between shapes (`kernels/shape.cu`): ResNet's option-A shortcut
//! (channel zero-pad + strided subsample) and concatenation along an axis. Their backwards
//! are slices of the upstream gradient, which the engine takes with
//! [`super::memory::copy_strided`].

use super::{check_len, grid_for, kernel_count, AxisDims};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
use crate::kernels::SHAPE;
use cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};

/// Geometry of the option-A shortcut: x [N, Cin, H, W] -> y [N, Cout, OH, OW] with
/// OH = ceil(H / stride), OW = ceil(W / stride), input channel c landing at c + pad.
/// Laid out as `struct PadSubsample` in `shape.cu`.
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
    let function = dev.function(&SHAPE, "channel_pad_subsample_fwd", "", T::SUFFIX)?;
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
    let function = dev.function(&SHAPE, kernel, "", T::SUFFIX)?;
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
