//! Batch normalisation over the channels of NCHW input (PyTorch's `batch_norm` for 4-D
//! input, affine, with running statistics).
//!
//! Per channel `c`, over the `m = n*h*w` values of the batch:
//! `y = gamma (x - mean) / sqrt(var + eps) + beta`.
//!
//! - Training uses the batch's `mean` and biased `var`, and updates the running statistics
//!   in place: `running = (1 - momentum) running + momentum stat`, with the *unbiased*
//!   variance `var m / (m - 1)` for `running_var`.
//! - Evaluation uses `running_mean` and `running_var`.
//!
//! Backward (training), with `xhat = (x - mean) / sqrt(var + eps)`:
//! `dbeta = sum(dy)`, `dgamma = sum(dy xhat)`,
//! `dx = gamma / sqrt(var + eps) (dy - dbeta/m - xhat dgamma/m)` (the batch statistics
//! depend on `x`, hence the two mean terms). In evaluation the statistics are constants:
//! `dx = gamma dy / sqrt(running_var + eps)`.
use super::check_same;
use crate::backend::BatchNormDims;
use crate::error::{invalid, shape_err, Result};
use crate::tape::{self, Backward};
use crate::{no_grad, Tensor};

#[derive(Debug)]
struct BatchNormTrainBackward {
    dims: BatchNormDims,
    /// The batch mean and `1/sqrt(var + eps)`, per channel.
    mean: Tensor,
    inv_std: Tensor,
}

impl Backward for BatchNormTrainBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let (x, gamma) = (&inputs[0], &inputs[1]);
        let (dx, dgamma, dbeta) = g.storage().batch_norm2d_backward(
            &x.storage(),
            &gamma.storage(),
            &self.mean.storage(),
            &self.inv_std.storage(),
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

#[derive(Debug)]
struct BatchNormEvalBackward {
    /// Copies of the running statistics as the forward used them, shaped `[1, c, 1, 1]`:
    /// the mean and `1/sqrt(running_var + eps)`.
    mean: Tensor,
    inv_std: Tensor,
}

impl Backward for BatchNormEvalBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        // An affine map per channel: ordinary broadcast ops are fast enough here.
        let (x, gamma) = (&inputs[0], &inputs[1]);
        let c = [gamma.numel()];
        let gamma4 = gamma.reshape([1, c[0], 1, 1])?;
        let dx = g.mul(&gamma4.mul(&self.inv_std)?)?;
        let xhat = x.sub(&self.mean)?.mul(&self.inv_std)?;
        let dgamma = g.mul(&xhat)?.sum(&[0, 2, 3], false)?.reshape(c)?;
        let dbeta = g.sum(&[0, 2, 3], false)?.reshape(c)?;
        Ok(vec![Some(dx), Some(dgamma), Some(dbeta)])
    }
}

impl Tensor {
    /// Batch normalisation of NCHW `self` with per-channel `gamma`, `beta`, `running_mean`
    /// and `running_var` (all `[c]`). With `training`, normalises by the batch statistics
    /// and updates the running ones in place (`running = (1 - momentum) running +
    /// momentum stat`, unbiased variance); otherwise normalises by the running statistics.
    /// `y = gamma (x - mean) / sqrt(var + eps) + beta` per channel; training's
    /// `dx = gamma / sqrt(var + eps) (dy - mean(dy) - xhat mean(dy xhat))`,
    /// `dgamma = sum(dy xhat)`, `dbeta = sum(dy)`. The module docs give both modes.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm2d(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor> {
        let (dims, h, w) =
            self.batch_norm2d_check(gamma, beta, running_mean, running_var, momentum, eps)?;
        let (n, c) = (dims.n, dims.c);
        const OP: &str = "batch_norm2d";
        let inputs = [self, gamma, beta];
        if !training {
            let s = self.storage().batch_norm2d_eval(
                &gamma.storage(),
                &beta.storage(),
                &running_mean.storage(),
                &running_var.storage(),
                &dims,
                eps,
                false,
            )?;
            // The backward needs the running statistics as they are now: copy them, but
            // only when it will run (evaluation usually runs under `no_grad`).
            let recorded = tape::is_recording() && inputs.iter().any(|t| t.requires_grad());
            if !recorded {
                return Tensor::from_storage(s, self.shape().clone());
            }
            let (mean, inv_std) = no_grad(|| -> Result<_> {
                let mean = running_mean.detach().affine(1.0, 0.0)?; // a copy, not a view
                let inv_std = running_var.add_scalar(eps)?.powf(-0.5)?;
                Ok((mean.reshape([1, c, 1, 1])?, inv_std.reshape([1, c, 1, 1])?))
            })?;
            return Ok(Tensor::from_op(s, self.shape().clone(), &inputs, |_| {
                BatchNormEvalBackward { mean, inv_std }
            }));
        }
        let m = n * h * w;
        if m < 2 {
            return invalid(
                OP,
                format!(
                    "training needs more than one value per channel, input {:?} has {m}",
                    self.shape()
                ),
            );
        }
        let (y, stats) =
            self.storage()
                .batch_norm2d_train(&gamma.storage(), &beta.storage(), &dims, eps)?;
        let mean = Tensor::from_storage(stats.mean, [c])?;
        let var = Tensor::from_storage(stats.var, [c])?;
        let inv_std = Tensor::from_storage(stats.inv_std, [c])?;
        update_running([running_mean, running_var], [&mean, &var], m, momentum)?;
        Ok(Tensor::from_op(y, self.shape().clone(), &inputs, |_| {
            BatchNormTrainBackward {
                dims,
                mean,
                inv_std,
            }
        }))
    }
}

/// `running = (1 - momentum) running + momentum stat` for the mean and the unbiased
/// variance (`var m / (m - 1)`), in place, untaped.
pub(crate) fn update_running(
    [running_mean, running_var]: [&Tensor; 2],
    [mean, var]: [&Tensor; 2],
    m: usize,
    momentum: f64,
) -> Result<()> {
    no_grad(|| -> Result<()> {
        let unbiased = var.scale(m as f64 / (m - 1) as f64)?;
        for (running, stat) in [(running_mean, mean), (running_var, &unbiased)] {
            let updated = running
                .affine(1.0 - momentum, 0.0)?
                .add(&stat.scale(momentum)?)?;
            running.assign(&updated)?;
        }
        Ok(())
    })
}

impl Tensor {
    /// Checks batch_norm2d's arguments: `(dims, h, w)` of NCHW `self`.
    pub(crate) fn batch_norm2d_check(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        momentum: f64,
        eps: f64,
    ) -> Result<(BatchNormDims, usize, usize)> {
        const OP: &str = "batch_norm2d";
        if self.rank() != 4 {
            return shape_err(OP, format!("needs NCHW input, got {:?}", self.shape()));
        }
        let (n, c, h, w) = (
            self.dims()[0],
            self.dims()[1],
            self.dims()[2],
            self.dims()[3],
        );
        let per_channel = [
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ];
        for (name, t) in per_channel {
            check_same(OP, self, t)?;
            if t.dims() != [c] {
                return shape_err(
                    OP,
                    format!(
                        "{name} {:?} for input {:?}: want [{c}]",
                        t.shape(),
                        self.shape()
                    ),
                );
            }
        }
        if !(eps > 0.0 && eps.is_finite()) {
            return invalid(
                OP,
                format!("eps {eps} must be positive (input {:?})", self.shape()),
            );
        }
        if !(0.0..=1.0).contains(&momentum) {
            return invalid(
                OP,
                format!(
                    "momentum {momentum} must lie in [0, 1] (input {:?})",
                    self.shape()
                ),
            );
        }
        Ok((BatchNormDims { n, c, hw: h * w }, h, w))
    }
}
