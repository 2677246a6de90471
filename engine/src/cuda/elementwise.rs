//! Unary maps and broadcasting binary ops (`cuda/kernels/elementwise.cu`).
use super::{GpuFloat, GpuResult};
use crate::backend::{BinaryOp, UnaryOp};
use crate::Shape;
use arbor_cuda::ops::elementwise::{self as kernels, BinaryOp as Kernel, UnaryOp as Map};
use arbor_cuda::ops::memory::{copy_strided, StridedView};
use arbor_cuda::{CudaSlice, GpuDevice};

pub(super) fn unary<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    op: UnaryOp,
) -> GpuResult<CudaSlice<T>> {
    let c = T::from_f64;
    let mut y = dev.alloc_zeros::<T>(x.len())?;
    match op {
        UnaryOp::Neg => kernels::unary_fwd(dev, Map::Neg, x, &mut y)?,
        UnaryOp::Exp => kernels::unary_fwd(dev, Map::Exp, x, &mut y)?,
        UnaryOp::Log => kernels::unary_fwd(dev, Map::Log, x, &mut y)?,
        UnaryOp::Sqrt => kernels::unary_fwd(dev, Map::Sqrt, x, &mut y)?,
        UnaryOp::Relu => kernels::unary_fwd(dev, Map::Relu, x, &mut y)?,
        UnaryOp::Clamp { lo, hi } => kernels::clamp_fwd(dev, x, &mut y, c(lo), c(hi))?,
        UnaryOp::Powf(p) => kernels::powf_fwd(dev, x, &mut y, c(p))?,
        UnaryOp::Affine { mul, add } => kernels::affine_fwd(dev, x, &mut y, c(mul), c(add))?,
    }
    Ok(y)
}

/// `a op b` with `a` of shape `l`, `b` of shape `r`, the result of shape `o`.
pub(super) fn binary<T: GpuFloat>(
    dev: &GpuDevice,
    op: BinaryOp,
    a: &CudaSlice<T>,
    l: &Shape,
    b: &CudaSlice<T>,
    r: &Shape,
    o: &Shape,
) -> GpuResult<CudaSlice<T>> {
    // The kernels produce the broadcast of their operands' shapes; when the caller asks for
    // a larger `o` (`broadcast_to` adds a scalar 0 with `o` the target shape), `a` is
    // expanded to `o` first.
    let expanded;
    let (a, l) = match Shape::broadcast("binary", l, r) {
        Ok(common) if &common == o => (a, l),
        _ => {
            let strides = l.broadcast_strides(o);
            let view = StridedView {
                shape: o.dims(),
                strides: &strides,
                offset: 0,
            };
            let mut y = dev.alloc_zeros::<T>(o.numel())?;
            copy_strided(dev, a, &view, &mut y)?;
            expanded = y;
            (&expanded, o)
        }
    };
    let (l, r) = (l.dims(), r.dims());
    let mut out = dev.alloc_zeros::<T>(o.numel())?;
    let kernel = match op {
        BinaryOp::Add => Kernel::Add,
        BinaryOp::Sub => Kernel::Sub,
        BinaryOp::Mul => Kernel::Mul,
        BinaryOp::Div => Kernel::Div,
        BinaryOp::Eq => Kernel::Eq,
        BinaryOp::ReluGrad => Kernel::ReluGrad,
        BinaryOp::ClampGrad { lo, hi } => {
            let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
            kernels::clamp_grad(dev, a, l, b, r, &mut out, lo, hi)?;
            return Ok(out);
        }
    };
    kernels::binary(dev, kernel, a, l, b, r, &mut out)?;
    Ok(out)
}
