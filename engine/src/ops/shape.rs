//! Reshape (free: shares the buffer), permute and transpose (copies).
use crate::error::{Error, Result};
use crate::tape::Backward;
use crate::{Shape, Tensor};

#[derive(Debug)]
struct ReshapeBackward;

impl Backward for ReshapeBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.reshape(inputs[0].shape().clone())?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct PermuteBackward {
    perm: Vec<usize>,
}

impl Backward for PermuteBackward {
    fn backward(&self, g: &Tensor, _inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let mut inverse = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(vec![Some(g.permute(&inverse)?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

impl Tensor {
    /// Same values, new shape with the same element count. No copy. `y = x` read in the
    /// new shape; `dx = dy` reshaped back.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::Shape {
                op: "reshape",
                msg: format!(
                    "cannot view {:?} ({} values) as {shape:?}",
                    self.shape(),
                    self.numel()
                ),
            });
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(Tensor::from_op_shared(
            self.shared_storage(),
            shape,
            &[self],
            |_| ReshapeBackward,
        ))
    }

    /// Flattens dimensions `from..` into one (a [`Tensor::reshape`]); `dx = dy` reshaped back.
    pub fn flatten_from(&self, from: usize) -> Result<Tensor> {
        if from > self.rank() {
            return Err(Error::Axis {
                op: "flatten",
                axis: from as isize,
                rank: self.rank(),
            });
        }
        let mut d = self.dims()[..from].to_vec();
        d.push(self.dims()[from..].iter().product());
        self.reshape(d)
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]` (`y[j] = x[k]` with
    /// `k[perm[i]] = j[i]`); `dx = dy` permuted by the inverse permutation.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank()
            || perm
                .iter()
                .any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true))
        {
            return crate::error::invalid(
                "permute",
                format!(
                    "{perm:?} is not a permutation of the axes of {:?}",
                    self.shape()
                ),
            );
        }
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims()[p]).collect();
        let s = self.storage().permute(self.shape(), perm)?;
        Ok(Tensor::from_op(s, Shape::new(dims), &[self], |_| {
            PermuteBackward {
                perm: perm.to_vec(),
            }
        }))
    }

    /// Swaps two axes (a [`Tensor::permute`]); `dx = dy` with the same two axes swapped back.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }
}
