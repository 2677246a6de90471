//! Elementwise unary ops (`kernels/unary.cu`): y = f(x). Their backwards are composed from
//! other ops by the engine: relu' and clamp' are masks (`binary.rs`: `ReluGrad`,
//! [`super::binary::clamp_grad`]), exp' = y (mul), log' = 1/x (div), sqrt' = 1/(2y),
//! powf' = p x^(p-1) (powf, mul), neg' = -1 (neg).

use super::{check_len, grid_for, kernel_count};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::Result;
use crate::kernels::UNARY;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// The parameterless unary ops; each has a kernel `<op>_fwd_<dtype>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// y = -x
    Neg,
    /// y = e^x
    Exp,
    /// y = ln x
    Log,
    /// y = sqrt(x)
    Sqrt,
    /// y = max(x, 0)
    Relu,
}

impl UnaryOp {
    fn kernel(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg_fwd",
            UnaryOp::Exp => "exp_fwd",
            UnaryOp::Log => "log_fwd",
            UnaryOp::Sqrt => "sqrt_fwd",
            UnaryOp::Relu => "relu_fwd",
        }
    }
}

/// y = op(x), elementwise.
pub fn unary_fwd<T: Real>(
    dev: &GpuDevice,
    op: UnaryOp,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    map(dev, op.kernel(), x, y, &[])
}

/// y = clamp(x, lo, hi); a NaN stays NaN.
pub fn clamp_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    lo: T,
    hi: T,
) -> Result<()> {
    map(dev, "clamp_fwd", x, y, &[lo, hi])
}

/// y = x^p for a scalar exponent p.
pub fn powf_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    p: T,
) -> Result<()> {
    map(dev, "powf_fwd", x, y, &[p])
}

/// y = a * x + b (scalar scale and shift).
pub fn affine_fwd<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    a: T,
    b: T,
) -> Result<()> {
    map(dev, "affine_fwd", x, y, &[a, b])
}

/// Launches `kernel(x, y, n, scalars...)`.
fn map<T: Real>(
    dev: &GpuDevice,
    kernel: &'static str,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    scalars: &[T],
) -> Result<()> {
    check_len("y", y.len(), x.len())?;
    let n = kernel_count("x", x.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&UNARY, kernel, "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(&n);
    for scalar in scalars {
        launch.arg(scalar);
    }
    // SAFETY: the arguments match the kernel's parameter list and both buffers hold n
    // elements.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
