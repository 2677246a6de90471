//! softmax and log_softmax over the last axis of a [rows, cols] tensor
//! (`kernels/softmax.cu`), and their backward from the forward output:
//! softmax: dx = y (dy - sum(dy y)); log_softmax: dx = dy - exp(y) sum(dy).

use super::{check_len, kernel_count, rows_launch};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::Result;
use crate::kernels::SOFTMAX;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// y = softmax(x) along each row.
pub fn softmax_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    forward(dev, "softmax_fwd", x, y, rows, cols)
}

/// y = log_softmax(x) = x - logsumexp(x) along each row.
pub fn log_softmax_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    forward(dev, "log_softmax_fwd", x, y, rows, cols)
}

/// Backward of [`softmax_fwd`] given its output `y`.
pub fn softmax_bwd<T: Real>(
    dev: &GpuDevice,
    y: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    backward(dev, "softmax_bwd", y, dy, dx, rows, cols)
}

/// Backward of [`log_softmax_fwd`] given its output `y`.
pub fn log_softmax_bwd<T: Real>(
    dev: &GpuDevice,
    y: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    backward(dev, "log_softmax_bwd", y, dy, dx, rows, cols)
}

fn forward<T: Real>(
    dev: &GpuDevice,
    kernel: &'static str,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let n = kernel_count("x", rows.saturating_mul(cols))?;
    check_len("x", x.len(), n as usize)?;
    check_len("y", y.len(), n as usize)?;
    if n == 0 {
        return Ok(());
    }
    let (cfg, variant) = rows_launch(rows as u32, cols);
    let (rows, cols) = (rows as u32, cols as u32);
    let function = dev.function(&SOFTMAX, kernel, variant, T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(&rows).arg(&cols);
    // SAFETY: arguments match the kernel; both buffers hold rows * cols elements.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

fn backward<T: Real>(
    dev: &GpuDevice,
    kernel: &'static str,
    y: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let n = kernel_count("y", rows.saturating_mul(cols))?;
    check_len("y", y.len(), n as usize)?;
    check_len("dy", dy.len(), n as usize)?;
    check_len("dx", dx.len(), n as usize)?;
    if n == 0 {
        return Ok(());
    }
    let (cfg, variant) = rows_launch(rows as u32, cols);
    let (rows, cols) = (rows as u32, cols as u32);
    let function = dev.function(&SOFTMAX, kernel, variant, T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(y).arg(dy).arg(dx).arg(&rows).arg(&cols);
    // SAFETY: arguments match the kernel; all buffers hold rows * cols elements.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}
