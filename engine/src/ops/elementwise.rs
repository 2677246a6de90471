//! Elementwise ops. Binary ops broadcast NumPy-style; the backward sums each gradient back
//! to its operand's shape.
//!
//! | op | forward | backward |
//! |---|---|---|
//! | add / sub | `a ± b` | `g`, `±g` |
//! | mul | `a b` | `g b`, `g a` |
//! | div | `a / b` | `g / b`, `-g a / b²` |
//! | neg, exp, log, sqrt | | `-g`, `g y`, `g / x`, `g / (2y)` |
//! | relu | `max(x, 0)` | `g [x > 0]` |
//! | clamp | `min(max(x, lo), hi)` | `g [lo <= x <= hi]` |
//! | powf | `x^p` | `g p x^(p-1)` |
//! | affine | `m x + c` | `g m` |
use super::check_same;
use crate::backend::{BinaryOp, UnaryOp};
use crate::error::Result;
use crate::tape::Backward;
use crate::{Shape, Tensor};

#[derive(Debug)]
struct BinaryBackward {
    op: BinaryOp,
}

impl Backward for BinaryBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (ga, gb) = match self.op {
            BinaryOp::Add => (g.clone(), g.clone()),
            BinaryOp::Sub => (g.clone(), g.neg()?),
            BinaryOp::Mul => (g.mul(b)?, g.mul(a)?),
            BinaryOp::Div => (g.div(b)?, g.mul(a)?.div(&b.mul(b)?)?.neg()?),
            // Masks and gradient helpers: used inside backward rules, never differentiated.
            BinaryOp::Eq | BinaryOp::ReluGrad | BinaryOp::ClampGrad { .. } => {
                return Ok(vec![None, None])
            }
        };
        Ok(vec![
            Some(ga.sum_to_shape(a.shape())?),
            Some(gb.sum_to_shape(b.shape())?),
        ])
    }
    fn needs_input_values(&self) -> bool {
        !matches!(self.op, BinaryOp::Add | BinaryOp::Sub)
    }
}

#[derive(Debug)]
struct UnaryBackward {
    op: UnaryOp,
    /// The op's output, for rules written in terms of it (exp, sqrt).
    out: Tensor,
}

impl Backward for UnaryBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let gx = match self.op {
            UnaryOp::Neg => g.neg()?,
            UnaryOp::Exp => g.mul(&self.out)?,
            UnaryOp::Log => g.div(x)?,
            UnaryOp::Sqrt => g.div(&self.out.affine(2.0, 0.0)?)?,
            // y > 0 exactly where x > 0, so the output serves and the input can be freed.
            UnaryOp::Relu => self.out.binary_op(g, BinaryOp::ReluGrad)?,
            UnaryOp::Clamp { lo, hi } => x.binary_op(g, BinaryOp::ClampGrad { lo, hi })?,
            UnaryOp::Powf(p) => g.mul(&x.powf(p - 1.0)?.affine(p, 0.0)?)?,
            UnaryOp::Affine { mul, .. } => g.affine(mul, 0.0)?,
        };
        Ok(vec![Some(gx)])
    }
    fn needs_input_values(&self) -> bool {
        matches!(
            self.op,
            UnaryOp::Log | UnaryOp::Clamp { .. } | UnaryOp::Powf(_)
        )
    }
}

impl Tensor {
    /// Any binary op with broadcasting (the named methods below are the usual entry points).
    /// Shapes broadcast NumPy-style; each operand's gradient is summed back to its own
    /// shape ([`Tensor::sum_to_shape`]).
    pub fn binary_op(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        check_same("binary", self, rhs)?;
        let out = Shape::broadcast("binary", self.shape(), rhs.shape())?;
        let s = self
            .storage()
            .binary(&rhs.storage(), op, self.shape(), rhs.shape(), &out)?;
        Ok(Tensor::from_op(s, out, &[self, rhs], |_| BinaryBackward {
            op,
        }))
    }
    /// `y = a + b` (broadcasting); `da = dy`, `db = dy`.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Add)
    }
    /// `y = a - b` (broadcasting); `da = dy`, `db = -dy`.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Sub)
    }
    /// `y = a · b` (broadcasting); `da = dy · b`, `db = dy · a`.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Mul)
    }
    /// `y = a / b` (broadcasting); `da = dy / b`, `db = -dy · a / b²`.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary_op(rhs, BinaryOp::Div)
    }

    fn unary_op(&self, op: UnaryOp) -> Result<Tensor> {
        let s = self.storage().unary(op)?;
        Ok(Tensor::from_op(s, self.shape().clone(), &[self], |out| {
            UnaryBackward {
                op,
                out: out.detach(),
            }
        }))
    }
    /// `y = -x`; `dx = -dy`.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Neg)
    }
    /// `y = e^x`; `dx = dy · y`.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Exp)
    }
    /// `y = ln x`; `dx = dy / x`.
    pub fn log(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Log)
    }
    /// `y = √x`; `dx = dy / (2y)`.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Sqrt)
    }
    /// `y = max(x, 0)`; `dx = dy · [x > 0]`.
    ///
    /// ```
    /// use arbor_engine::Tensor;
    /// let x = Tensor::parameter(vec![-1.0f64, 0.5, 2.0], [3])?;
    /// let y = x.relu()?;
    /// assert_eq!(y.to_vec::<f64>()?, [0.0, 0.5, 2.0]);
    /// y.sum_all()?.backward()?;
    /// assert_eq!(x.grad().unwrap().to_vec::<f64>()?, [0.0, 1.0, 1.0]);
    /// # Ok::<(), arbor_engine::Error>(())
    /// ```
    pub fn relu(&self) -> Result<Tensor> {
        self.unary_op(UnaryOp::Relu)
    }
    /// `y = min(max(x, lo), hi)`; `dx = dy · [lo <= x <= hi]` (no gradient flows where
    /// the input was outside).
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return crate::error::invalid(
                "clamp",
                format!("bounds [{lo}, {hi}] are not an interval"),
            );
        }
        self.unary_op(UnaryOp::Clamp { lo, hi })
    }
    /// `y = x^p` for a scalar exponent; `dx = dy · p x^(p-1)`.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        self.unary_op(UnaryOp::Powf(p))
    }
    /// `y = mul · x + add`; `dx = mul · dy`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.unary_op(UnaryOp::Affine { mul, add })
    }
    /// `y = s · x`; `dx = s · dy`.
    pub fn scale(&self, s: f64) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    /// `y = x + c`; `dx = dy`.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.affine(1.0, c)
    }

    /// Sums broadcast dimensions away so the result has `shape` (the reverse of
    /// broadcasting; used by every broadcasting backward): `y` is `x` summed over the axes
    /// that `shape` lacks or holds as 1; `dx = dy` broadcast back to `x`'s shape.
    pub fn sum_to_shape(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self
            .rank()
            .checked_sub(shape.rank())
            .ok_or_else(|| crate::Error::Shape {
                op: "sum_to_shape",
                msg: format!(
                    "cannot sum {:?} to the larger rank of {shape:?}",
                    self.shape()
                ),
            })?;
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for (i, &d) in shape.dims().iter().enumerate() {
            if d == 1 && self.dims()[lead + i] != 1 {
                axes.push((lead + i) as isize);
            }
        }
        self.sum(&axes, true)?.reshape(shape.clone())
    }

    /// Repeats along broadcast dimensions to `shape`: `y[i] = x[i]` with `x`'s size-1
    /// (and missing leading) axes read at index 0; `dx = dy` summed over those axes.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if Shape::broadcast("broadcast_to", self.shape(), &shape)? != shape {
            return crate::error::shape_err(
                "broadcast_to",
                format!("{:?} does not broadcast to {shape:?}", self.shape()),
            );
        }
        if self.shape() == &shape {
            return Ok(self.clone());
        }
        // The binary kernel takes the output shape separately: adding a scalar zero with
        // the output shape set to `shape` is exactly a broadcast copy.
        let zero = Tensor::zeros(Shape::scalar(), self.dtype()).to_device(self.device())?;
        let s = self.storage().binary(
            &zero.storage(),
            BinaryOp::Add,
            self.shape(),
            zero.shape(),
            &shape,
        )?;
        Ok(Tensor::from_op(s, shape, &[self], |_| BroadcastBackward))
    }
}

#[derive(Debug)]
struct BroadcastBackward;

impl Backward for BroadcastBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.sum_to_shape(inputs[0].shape())?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}
