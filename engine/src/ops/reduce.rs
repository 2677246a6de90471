//! Reductions over axes: sum, mean, max, logsumexp.
//!
//! Backward rules: sum broadcasts `g` back; max sends `g` to the positions equal to the
//! maximum, split evenly between ties; logsumexp sends `g * softmax(x)` along the axis.
use crate::backend::{BinaryOp, ReduceOp};
use crate::error::Result;
use crate::tape::Backward;
use crate::{Shape, Storage, Tensor};

#[derive(Debug)]
struct SumBackward {
    /// The output's shape with the reduced axes kept as size 1.
    keep: Shape,
}

impl Backward for SumBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(
            g.reshape(self.keep.clone())?
                .broadcast_to(inputs[0].shape().clone())?,
        )])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct MaxBackward {
    /// The reduced output, kept with the axis as size 1.
    out: Tensor,
    axis: usize,
}

impl Backward for MaxBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let mask = x.binary_op(&self.out, BinaryOp::Eq)?;
        let ties = mask.sum(&[self.axis as isize], true)?;
        Ok(vec![Some(mask.mul(&g.div(&ties)?)?)])
    }
}

#[derive(Debug)]
struct LogSumExpBackward {
    out: Tensor,
}

impl Backward for LogSumExpBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let softmax = inputs[0].sub(&self.out)?.exp()?;
        Ok(vec![Some(softmax.mul(g)?)])
    }
}

/// Shape with `axis` set to 1.
fn keep_shape(s: &Shape, axis: usize) -> Shape {
    let mut d = s.dims().to_vec();
    d[axis] = 1;
    Shape::new(d)
}

/// Shape with `axes` removed.
fn drop_axes(s: &Shape, axes: &[usize]) -> Shape {
    Shape::new(
        s.dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect::<Vec<_>>(),
    )
}

impl Tensor {
    fn normalise_axes(&self, op: &'static str, axes: &[isize]) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let a = self.shape().axis(op, a)?;
            if out.contains(&a) {
                return crate::error::invalid(op, format!("axis {a} listed twice"));
            }
            out.push(a);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// One-axis reduction keeping the axis (size 1).
    fn reduce_keep(&self, op: ReduceOp, axis: usize) -> Result<Storage> {
        self.storage().reduce(op, self.shape(), axis)
    }

    /// Sum over `axes` (negative counts from the end); `keepdim` leaves them as size 1.
    /// `y = sum_{axes} x`; `dx = dy` broadcast back over the summed axes.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let axes = self.normalise_axes("sum", axes)?;
        let mut shape = self.shape().clone();
        let mut storage: Option<Storage> = None;
        for &a in &axes {
            let s = match &storage {
                None => self.reduce_keep(ReduceOp::Sum, a)?,
                Some(prev) => prev.reduce(ReduceOp::Sum, &shape, a)?,
            };
            shape = keep_shape(&shape, a);
            storage = Some(s);
        }
        let Some(storage) = storage else {
            return Ok(self.clone());
        };
        let out_shape = if keepdim {
            shape.clone()
        } else {
            drop_axes(self.shape(), &axes)
        };
        Ok(Tensor::from_op(storage, out_shape, &[self], |_| {
            SumBackward { keep: shape }
        }))
    }

    /// Sum of every element, as a scalar: `y = sum_i x_i`; `dx_i = dy`.
    pub fn sum_all(&self) -> Result<Tensor> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&axes, false)
    }

    /// Mean over `axes`: `y = (1/n) sum_{axes} x` with `n` the number of elements averaged;
    /// `dx = dy / n`, broadcast back over the averaged axes.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let norm = self.normalise_axes("mean", axes)?;
        let count: usize = norm.iter().map(|&a| self.dims()[a]).product();
        self.sum(axes, keepdim)?.scale(1.0 / count.max(1) as f64)
    }

    /// Mean of every element, as a scalar: `y = (1/n) sum_i x_i`; `dx_i = dy / n`.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.sum_all()?.scale(1.0 / self.numel().max(1) as f64)
    }

    /// Maximum over one axis: `y = max_j x_j`; `dx_j = dy [x_j = y] / (number of ties)`,
    /// the gradient split evenly between the positions that attain the maximum.
    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let a = self.shape().axis("max", axis)?;
        if self.dims()[a] == 0 {
            return crate::error::invalid(
                "max",
                format!("axis {a} of {:?} is empty", self.shape()),
            );
        }
        let keep = keep_shape(self.shape(), a);
        let s = self.reduce_keep(ReduceOp::Max, a)?;
        let out = Tensor::from_op(s, keep.clone(), &[self], |out| MaxBackward {
            out: out.detach(),
            axis: a,
        });
        if keepdim {
            Ok(out)
        } else {
            out.reshape(drop_axes(self.shape(), &[a]))
        }
    }

    /// `y = log(sum_j exp(x_j))` over one axis, computed stably (max-shifted);
    /// `dx_j = dy · softmax(x)_j = dy · exp(x_j - y)`.
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let a = self.shape().axis("logsumexp", axis)?;
        let keep = keep_shape(self.shape(), a);
        let s = self.reduce_keep(ReduceOp::LogSumExp, a)?;
        let out = Tensor::from_op(s, keep, &[self], |out| LogSumExpBackward {
            out: out.detach(),
        });
        if keepdim {
            Ok(out)
        } else {
            out.reshape(drop_axes(self.shape(), &[a]))
        }
    }
}
