//! Layers built from primitives.
use crate::error::{Error, Result};
use crate::Tensor;

impl Tensor {
    /// `y = x W^T + b` for `x: [B, in]`, `W: [out, in]`, `b: [out]` (PyTorch's layout);
    /// `dx = dy W`, `dW = dy^T x`, `db = sum_rows dy` (a `matmul_t` and a broadcast add).
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        if self.rank() != 2 || weight.rank() != 2 || self.dims()[1] != weight.dims()[1] {
            return Err(Error::Shape {
                op: "linear",
                msg: format!(
                    "input {:?} with weight {:?} (want [B, in] and [out, in])",
                    self.shape(),
                    weight.shape()
                ),
            });
        }
        let y = self.matmul_t(weight, false, true)?;
        match bias {
            Some(b) if b.dims() != [weight.dims()[0]] => Err(Error::Shape {
                op: "linear",
                msg: format!("bias {:?} for {} outputs", b.shape(), weight.dims()[0]),
            }),
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    /// Mean over the spatial axes of NCHW: `[N, C, H, W] -> [N, C]`,
    /// `y[n, c] = (1 / HW) sum_{h,w} x[n, c, h, w]`; `dx[n, c, h, w] = dy[n, c] / HW`.
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        if self.rank() != 4 {
            return Err(Error::Shape {
                op: "global_avg_pool2d",
                msg: format!("needs NCHW, got {:?}", self.shape()),
            });
        }
        let (n, c) = (self.dims()[0], self.dims()[1]);
        self.flatten_from(2)?.mean(&[2], false)?.reshape([n, c])
    }
}
