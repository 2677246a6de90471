//! 2-D max and average pooling over NCHW (PyTorch's `max_pool2d` / `avg_pool2d` with
//! `ceil_mode=False`). Output size per axis: `(h + 2 pad - k) / stride + 1`.
//!
//! | op | forward | backward |
//! |---|---|---|
//! | max | `y = max over the window` (padding is `-inf`) | `dy` goes to the first maximum of each window |
//! | avg | `y = sum over the window / (kh kw)` (padding counts as 0) | `dx[i] = sum of dy / (kh kw)` over the windows covering `i` |
use crate::backend::Pool2dParams;
use crate::error::{invalid, shape_err, Result};
use crate::tape::Backward;
use crate::{Shape, Tensor};

#[derive(Debug)]
struct MaxPool2dBackward {
    params: Pool2dParams,
}

impl Backward for MaxPool2dBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        // The argmax is recomputed from the input rather than stored at forward time.
        let s = x
            .storage()
            .max_pool2d_backward(&g.storage(), &self.params)?;
        Ok(vec![Some(Tensor::from_storage(s, x.shape().clone())?)])
    }
}

#[derive(Debug)]
struct AvgPool2dBackward {
    params: Pool2dParams,
}

impl Backward for AvgPool2dBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let s = g.storage().avg_pool2d_backward(&self.params)?;
        Ok(vec![Some(Tensor::from_storage(
            s,
            inputs[0].shape().clone(),
        )?)])
    }
}

impl Tensor {
    /// Checks the arguments and builds the geometry, with errors naming `op` and the shape.
    fn pool_params(
        &self,
        op: &'static str,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Pool2dParams> {
        if self.rank() != 4 {
            return shape_err(op, format!("needs NCHW input, got {:?}", self.shape()));
        }
        if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            return invalid(
                op,
                format!(
                    "kernel {kernel:?} and stride {stride:?} must be positive (input {:?})",
                    self.shape()
                ),
            );
        }
        // PyTorch's rule: with more padding, a window could hold nothing but padding.
        if 2 * padding.0 > kernel.0 || 2 * padding.1 > kernel.1 {
            return invalid(
                op,
                format!(
                    "padding {padding:?} exceeds half of kernel {kernel:?} (input {:?})",
                    self.shape()
                ),
            );
        }
        let d = self.dims();
        if kernel.0 > d[2] + 2 * padding.0 || kernel.1 > d[3] + 2 * padding.1 {
            return shape_err(
                op,
                format!(
                    "kernel {kernel:?} is larger than input {:?} padded by {padding:?}",
                    self.shape()
                ),
            );
        }
        Ok(Pool2dParams {
            batch: d[0],
            channels: d[1],
            h_in: d[2],
            w_in: d[3],
            kernel,
            stride,
            padding,
        })
    }

    fn pool_out_shape(p: &Pool2dParams) -> Shape {
        Shape::new([p.batch, p.channels, p.h_out(), p.w_out()])
    }

    /// Max pooling over `kernel` windows (`(rows, columns)`), moved by `stride`, with
    /// `-inf` padding: `y = max over the window`; `dx` is `dy` added at each window's
    /// first maximum (row-major order breaks ties), zero elsewhere.
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        let params = self.pool_params("max_pool2d", kernel, stride, padding)?;
        let s = self.storage().max_pool2d(&params)?;
        Ok(Tensor::from_op(
            s,
            Self::pool_out_shape(&params),
            &[self],
            |_| MaxPool2dBackward { params },
        ))
    }

    /// Average pooling: `y = (sum over the window) / (kh kw)`, padding counted as zeros
    /// (PyTorch's default `count_include_pad=True`); `dx[i] = sum of dy / (kh kw)` over the
    /// windows that cover `i`.
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        let params = self.pool_params("avg_pool2d", kernel, stride, padding)?;
        let s = self.storage().avg_pool2d(&params)?;
        Ok(Tensor::from_op(
            s,
            Self::pool_out_shape(&params),
            &[self],
            |_| AvgPool2dBackward { params },
        ))
    }
}
