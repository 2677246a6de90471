//! Softmax and log-softmax over the last axis (fused row kernels).
//! Backward: softmax `dx = y (g - <g, y>)`; log-softmax `dx = g - softmax(x) sum(g)`.
use crate::error::{invalid, Result};
use crate::tape::Backward;
use crate::Tensor;

#[derive(Debug)]
struct SoftmaxBackward {
    out: Tensor,
    log: bool,
}

impl Backward for SoftmaxBackward {
    fn backward(&self, g: &Tensor, _inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let cols = *self.out.dims().last().unwrap_or(&1);
        let rows = self.out.numel() / cols.max(1);
        let s = self
            .out
            .storage()
            .softmax_rows_backward(&g.storage(), rows, cols, self.log)?;
        Ok(vec![Some(Tensor::from_storage(
            s,
            self.out.shape().clone(),
        )?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

impl Tensor {
    fn softmax_impl(&self, log: bool) -> Result<Tensor> {
        let Some(&cols) = self.dims().last() else {
            return invalid("softmax", "needs at least one axis, got a scalar");
        };
        let rows = self.numel() / cols.max(1);
        let s = self.storage().softmax_rows(rows, cols, log)?;
        Ok(Tensor::from_op(s, self.shape().clone(), &[self], |out| {
            SoftmaxBackward {
                out: out.detach(),
                log,
            }
        }))
    }
    /// Softmax over the last axis: `y_j = exp(x_j) / sum_k exp(x_k)`;
    /// `dx = y · (dy - <dy, y>)`, the inner product taken along the row.
    pub fn softmax(&self) -> Result<Tensor> {
        self.softmax_impl(false)
    }
    /// Log-softmax over the last axis: `y_j = x_j - log sum_k exp(x_k)`;
    /// `dx = dy - softmax(x) · sum_j dy_j`.
    pub fn log_softmax(&self) -> Result<Tensor> {
        self.softmax_impl(true)
    }
}
