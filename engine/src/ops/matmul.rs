//! Matrix products. `C = op(A) op(B)` where `op` optionally transposes (free: strides).
//!
//! Backward, for `C = A B`: `dA = G B^T`, `dB = A^T G`; with transposes the same rule is
//! written with the flags swapped, so the backward is itself a matmul with no copies.
use super::check_same;
use crate::backend::MatmulDims;
use crate::error::{Error, Result};
use crate::tape::Backward;
use crate::{Shape, Tensor};

#[derive(Debug)]
struct MatmulBackward {
    lhs_t: bool,
    rhs_t: bool,
}

impl Backward for MatmulBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let ga = if a.requires_grad() {
            Some(if self.lhs_t {
                b.matmul_t(g, self.rhs_t, true)?
            } else {
                g.matmul_t(b, false, !self.rhs_t)?
            })
        } else {
            None
        };
        let gb = if b.requires_grad() {
            Some(if self.rhs_t {
                g.matmul_t(a, true, self.lhs_t)?
            } else {
                a.matmul_t(g, !self.lhs_t, false)?
            })
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
}

impl Tensor {
    /// Matrix product: `[m,k] x [k,n]`, `[b,m,k] x [b,k,n]`, or `[b,m,k] x [k,n]` (the
    /// matrix shared across the batch). `C = A B`, `C_ij = sum_k A_ik B_kj`;
    /// `dA = dC B^T`, `dB = A^T dC` (summed over the batch for a shared `B`).
    ///
    /// ```
    /// use arbor_engine::Tensor;
    /// let a = Tensor::parameter(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2])?;
    /// let b = Tensor::parameter(vec![5.0f64, 6.0, 7.0, 8.0], [2, 2])?;
    /// let c = a.matmul(&b)?;
    /// assert_eq!(c.to_vec::<f64>()?, [19.0, 22.0, 43.0, 50.0]);
    /// // d sum(C) / dA = ones B^T: row i of dA holds B's row sums.
    /// c.sum_all()?.backward()?;
    /// assert_eq!(a.grad().unwrap().to_vec::<f64>()?, [11.0, 15.0, 11.0, 15.0]);
    /// assert_eq!(b.grad().unwrap().to_vec::<f64>()?, [4.0, 4.0, 6.0, 6.0]);
    /// # Ok::<(), arbor_engine::Error>(())
    /// ```
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if self.rank() == 3 && rhs.rank() == 2 {
            // Fold the batch into the rows: one large GEMM instead of b small ones.
            let (b, m, k) = (self.dims()[0], self.dims()[1], self.dims()[2]);
            let out = self.reshape([b * m, k])?.matmul_t(rhs, false, false)?;
            return out.reshape([b, m, rhs.dims()[1]]);
        }
        self.matmul_t(rhs, false, false)
    }

    /// `C = op(A) op(B)`, each operand optionally read transposed (its last two axes).
    /// The gradients are [`Tensor::matmul`]'s with the transposes carried through, e.g. for
    /// `C = A B^T`: `dA = dC B`, `dB = dC^T A`, each itself one `matmul_t`.
    pub fn matmul_t(&self, rhs: &Tensor, lhs_t: bool, rhs_t: bool) -> Result<Tensor> {
        check_same("matmul", self, rhs)?;
        let bad = || Error::Shape {
            op: "matmul",
            msg: format!(
                "{:?}{} x {:?}{}",
                self.shape(),
                if lhs_t { "^T" } else { "" },
                rhs.shape(),
                if rhs_t { "^T" } else { "" }
            ),
        };
        let (batch, a2, b2) = match (self.rank(), rhs.rank()) {
            (2, 2) => (1, self.dims(), rhs.dims()),
            (3, 3) if self.dims()[0] == rhs.dims()[0] => {
                (self.dims()[0], &self.dims()[1..], &rhs.dims()[1..])
            }
            _ => return Err(bad()),
        };
        let (m, k) = if lhs_t {
            (a2[1], a2[0])
        } else {
            (a2[0], a2[1])
        };
        let (k2, n) = if rhs_t {
            (b2[1], b2[0])
        } else {
            (b2[0], b2[1])
        };
        if k != k2 {
            return Err(bad());
        }
        let dims = MatmulDims {
            batch,
            m,
            k,
            n,
            lhs_transposed: lhs_t,
            rhs_transposed: rhs_t,
            lhs_batch_stride: m * k,
            rhs_batch_stride: k * n,
        };
        let s = self.storage().matmul(&rhs.storage(), &dims)?;
        let shape = if self.rank() == 3 {
            Shape::new([batch, m, n])
        } else {
            Shape::new([m, n])
        };
        Ok(Tensor::from_op(s, shape, &[self, rhs], |_| {
            MatmulBackward { lhs_t, rhs_t }
        }))
    }
}
