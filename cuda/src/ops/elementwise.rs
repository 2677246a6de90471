//! Elementwise ops (`kernels/elementwise.cu`): unary maps y = f(x), and binary ops with
//! NumPy broadcasting, including the masks the engine's backward rules use (`Eq`,
//! `ReluGrad`, [`clamp_grad`]).
//!
//! The unary ops' backwards are composed from other ops by the engine: relu' and clamp'
//! are those masks, exp' = y (mul), log' = 1/x (div), sqrt' = 1/(2y), powf' = p x^(p-1)
//! (powf, mul), neg' = -1 (neg).

use super::strides::{broadcast_shape, broadcast_strides, contiguous_strides, to_dims6};
use super::{check_len, grid_for, kernel_count, product};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::Result;
use crate::kernels::ELEMENTWISE;
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
    let function = dev.function(&ELEMENTWISE, kernel, "", T::SUFFIX)?;
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

/// The binary ops; kernel `<op>_<dtype>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// 1 where a == b, else 0.
    Eq,
    /// b where a > 0, else 0: relu's backward with a = x, b = dy.
    ReluGrad,
}

impl BinaryOp {
    fn kernel(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Eq => "eq",
            BinaryOp::ReluGrad => "relu_grad",
        }
    }
}

/// out = a op b, with `a` of shape `a_shape` and `b` of shape `b_shape` broadcast to
/// their common shape, which `out` must have.
pub fn binary<T: Real>(
    dev: &GpuDevice,
    op: BinaryOp,
    a: &CudaSlice<T>,
    a_shape: &[usize],
    b: &CudaSlice<T>,
    b_shape: &[usize],
    out: &mut CudaSlice<T>,
) -> Result<()> {
    let operands = Operands {
        a,
        a_shape,
        b,
        b_shape,
    };
    launch(dev, op.kernel(), &operands, out, &[])
}

/// out = b where lo <= a <= hi, else 0 (clamp's backward with a = x, b = dy), broadcast
/// like [`binary`].
#[allow(clippy::too_many_arguments)]
pub fn clamp_grad<T: Real>(
    dev: &GpuDevice,
    a: &CudaSlice<T>,
    a_shape: &[usize],
    b: &CudaSlice<T>,
    b_shape: &[usize],
    out: &mut CudaSlice<T>,
    lo: T,
    hi: T,
) -> Result<()> {
    let operands = Operands {
        a,
        a_shape,
        b,
        b_shape,
    };
    launch(dev, "clamp_grad", &operands, out, &[lo, hi])
}

/// The two inputs of a binary kernel with their shapes.
struct Operands<'a, T> {
    a: &'a CudaSlice<T>,
    a_shape: &'a [usize],
    b: &'a CudaSlice<T>,
    b_shape: &'a [usize],
}

/// Launches `kernel(a, a_strides, b, b_strides, out, shape, n, scalars...)`.
fn launch<T: Real>(
    dev: &GpuDevice,
    kernel: &'static str,
    operands: &Operands<T>,
    out: &mut CudaSlice<T>,
    scalars: &[T],
) -> Result<()> {
    let Operands {
        a,
        a_shape,
        b,
        b_shape,
    } = *operands;
    check_len("a", a.len(), a_shape.iter().product())?;
    check_len("b", b.len(), b_shape.iter().product())?;
    let out_shape = broadcast_shape(a_shape, b_shape)?;
    let n = product("out", &out_shape)?;
    check_len("out", out.len(), n as usize)?;
    if n == 0 {
        return Ok(());
    }
    let a_strides = broadcast_strides(a_shape, &out_shape)?;
    let b_strides = broadcast_strides(b_shape, &out_shape)?;
    let out_strides = contiguous_strides(&out_shape);
    // The output's strides join the merge so that merged dims stay row-major for it too.
    let (dims, [a_strides, b_strides, _]) =
        to_dims6(&out_shape, [&a_strides, &b_strides, &out_strides])?;
    let function = dev.function(&ELEMENTWISE, kernel, "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(a)
        .arg(&a_strides)
        .arg(b)
        .arg(&b_strides)
        .arg(out)
        .arg(&dims)
        .arg(&n);
    for scalar in scalars {
        launch.arg(scalar);
    }
    // SAFETY: the arguments match the kernel's parameter list; every offset the strides
    // produce for an index below n lies inside its buffer (checked by the broadcast).
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
