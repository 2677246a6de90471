//! Fused ops of a ResNet block, each one pass over memory where the composed ops take
//! two or three:
//!
//! - `add_relu(a, b) = relu(a + b)` (the residual join). Backward: `g [y > 0]` to both
//!   inputs, read off the output as relu's is.
//! - `batch_norm2d_relu(x, ...) = relu(batch_norm2d(x, ...))`. Backward (training): with
//!   `dz = dy [z > 0]` for the pre-activation `z`, batch norm's own backward of `dz`
//!   (see `ops/batch_norm.rs`), the backend's `batch_norm2d_relu_backward`.
//!
//! Both are backend methods like any other op. The CPU runs one-pass kernels
//! (`cpu/fused.rs`, and `cpu/batch_norm.rs`, whose backward recomputes the mask from `x`
//! inside its two passes, so neither `z` nor a masked `dz` is ever stored); CUDA runs an
//! `add_relu` kernel (`fused.cu`) and composes batch norm + ReLU from its batch-norm and
//! elementwise kernels (`cuda/fused.rs`). For shapes that broadcast, and for batch norm in
//! evaluation while the tape records, these ops return the composed ops' result, so
//! callers can use them unconditionally.
use super::check_same;
use crate::backend::{BatchNormDims, BatchNormReluStats, BinaryOp};
use crate::error::Result;
use crate::storage::Storage;
use crate::tape::{self, Backward};
use crate::tensor::GradUpdate;
use crate::Tensor;

#[derive(Debug)]
struct AddReluBackward {
    out: Tensor,
}

impl Backward for AddReluBackward {
    fn backward(&self, g: &Tensor, _inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        // Over `g` itself when the tape holds it alone (one buffer fewer per block).
        let masked = if g.update_if_unshared(&self.out, GradUpdate::ReluMask) {
            g.clone()
        } else {
            self.out.binary_op(g, BinaryOp::ReluGrad)?
        };
        Ok(vec![Some(masked.clone()), Some(masked)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct BatchNormReluBackward {
    dims: BatchNormDims,
    /// The batch mean and `1/sqrt(var + eps)`, per channel.
    mean: Tensor,
    inv_std: Tensor,
    /// What the backend keeps to recover the ReLU's mask (see [`BatchNormReluStats`]).
    mask_source: Storage,
}

impl Backward for BatchNormReluBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let (x, gamma, beta) = (&inputs[0], &inputs[1], &inputs[2]);
        let (dx, dgamma, dbeta) = g.storage().batch_norm2d_relu_backward(
            &x.storage(),
            &gamma.storage(),
            &beta.storage(),
            &self.mean.storage(),
            &self.inv_std.storage(),
            &self.mask_source,
            &self.dims,
        )?;
        let c = [self.dims.c];
        Ok(vec![
            Some(Tensor::from_storage(dx, x.shape().clone())?),
            Some(Tensor::from_storage(dgamma, c)?),
            Some(Tensor::from_storage(dbeta, c)?),
        ])
    }
}

impl Tensor {
    /// `y = max(a + b, 0)` in one pass; `da = db = dy · [y > 0]` (the mask read off the
    /// output, as relu's is). `other` must have `self`'s shape for the fused kernel, and
    /// is broadcast by the composed ops otherwise.
    pub fn add_relu(&self, other: &Tensor) -> Result<Tensor> {
        check_same("add_relu", self, other)?;
        if self.shape() != other.shape() {
            return self.add(other)?.relu();
        }
        let s = self.storage().add_relu(&other.storage())?;
        Ok(Tensor::from_op(
            s,
            self.shape().clone(),
            &[self, other],
            |out| AddReluBackward { out: out.detach() },
        ))
    }

    /// `y = max(z, 0)` with `z = batch_norm2d(self, ...)` (same arguments and
    /// running-statistics update as [`Tensor::batch_norm2d`]), in one pass forward and two
    /// backward. Gradient: batch norm's own backward of `dz = dy · [z > 0]`.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm2d_relu(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor> {
        let (dims, _, _) =
            self.batch_norm2d_check(gamma, beta, running_mean, running_var, momentum, eps)?;
        let composed = || {
            self.batch_norm2d(
                gamma,
                beta,
                running_mean,
                running_var,
                training,
                momentum,
                eps,
            )?
            .relu()
        };
        let inputs = [self, gamma, beta];
        if !training {
            // The evaluation backward is the composed ops' (an affine map per channel).
            if tape::is_recording() && inputs.iter().any(|t| t.requires_grad()) {
                return composed();
            }
            let y = self.storage().batch_norm2d_eval(
                &gamma.storage(),
                &beta.storage(),
                &running_mean.storage(),
                &running_var.storage(),
                &dims,
                eps,
                true,
            )?;
            return Tensor::from_storage(y, self.shape().clone());
        }
        if dims.n * dims.hw < 2 {
            return composed(); // which reports the error
        }
        let (y, BatchNormReluStats { stats, mask_source }) = self
            .storage()
            .batch_norm2d_relu_train(&gamma.storage(), &beta.storage(), &dims, eps)?;
        let c = [dims.c];
        let mean = Tensor::from_storage(stats.mean, c)?;
        let var = Tensor::from_storage(stats.var, c)?;
        let inv_std = Tensor::from_storage(stats.inv_std, c)?;
        let m = dims.n * dims.hw;
        super::batch_norm::update_running([running_mean, running_var], [&mean, &var], m, momentum)?;
        Ok(Tensor::from_op(y, self.shape().clone(), &inputs, |_| {
            BatchNormReluBackward {
                dims,
                mean,
                inv_std,
                mask_source,
            }
        }))
    }
}
