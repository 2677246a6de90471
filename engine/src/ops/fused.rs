//! Fused ops of a ResNet block, each one pass over memory where the composed ops take
//! two or three:
//!
//! - `add_relu(a, b) = relu(a + b)` (the residual join). Backward: `g [y > 0]` to both
//!   inputs, read off the output as relu's is.
//! - `batch_norm2d_relu(x, ...) = relu(batch_norm2d(x, ...))`. Backward (training): with
//!   `dz = dy [z > 0]` for the pre-activation `z`, batch norm's own backward of `dz`
//!   (see `ops/batch_norm.rs`); the CPU kernel recomputes the mask from `x` inside its two
//!   passes, so neither `z` nor a masked `dz` is ever stored.
//!
//! The fused kernels are CPU ones. On another device, for shapes that broadcast, and for
//! batch norm in evaluation while the tape records, these ops return the composed ops'
//! result, so callers can use them unconditionally.
use super::check_same;
use crate::backend::{BatchNormDims, BinaryOp};
use crate::cpu::batch_norm::{backward_act, forward_eval_act, forward_train_act};
use crate::cpu::CpuStorage;
use crate::error::Result;
use crate::storage::Storage;
use crate::tape::{self, Backward};
use crate::{Float, Tensor};

/// Typed host slices of `parts`, if all are on the CPU with dtype `T`.
fn host<'a, T: Float>(parts: &[&'a Storage]) -> Option<Vec<&'a [T]>> {
    parts
        .iter()
        .map(|s| match s {
            Storage::Cpu(c) => c.as_slice::<T>(),
            _ => None,
        })
        .collect()
}

#[derive(Debug)]
struct AddReluBackward {
    out: Tensor,
}

impl Backward for AddReluBackward {
    fn backward(&self, g: &Tensor, _inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let masked = self.out.binary_op(g, BinaryOp::ReluGrad)?;
        Ok(vec![Some(masked.clone()), Some(masked)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct BatchNormReluBackward {
    dims: BatchNormDims,
    /// The batch mean, `1/sqrt(var + eps)` and the forward's exact `gamma inv_std`.
    mean: CpuStorage,
    inv_std: CpuStorage,
    scale: CpuStorage,
}

impl Backward for BatchNormReluBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let (x, gamma, beta) = (&inputs[0], &inputs[1], &inputs[2]);
        fn run<T: Float>(
            b: &BatchNormReluBackward,
            [g, x, gamma, beta]: [&Storage; 4],
        ) -> Option<[CpuStorage; 3]> {
            let v = host::<T>(&[g, x, gamma, beta])?;
            let (mean, inv_std) = (b.mean.as_slice::<T>()?, b.inv_std.as_slice::<T>()?);
            let relu = Some((b.scale.as_slice::<T>()?, v[3]));
            let (dx, dgamma, dbeta) = backward_act(v[0], v[1], v[2], mean, inv_std, relu, &b.dims);
            Some([dx, dgamma, dbeta].map(CpuStorage::from_vec))
        }
        let (gs, xs, gas, bs) = (g.storage(), x.storage(), gamma.storage(), beta.storage());
        let parts = [&*gs, &*xs, &*gas, &*bs];
        let out = run::<f32>(self, parts).or_else(|| run::<f64>(self, parts));
        let [dx, dgamma, dbeta] = out.ok_or_else(|| crate::Error::Device {
            op: "batch_norm2d_relu",
            msg: "the fused backward's operands left the CPU".into(),
        })?;
        let c = [self.dims.c];
        Ok(vec![
            Some(Tensor::from_storage(Storage::Cpu(dx), x.shape().clone())?),
            Some(Tensor::from_storage(Storage::Cpu(dgamma), c)?),
            Some(Tensor::from_storage(Storage::Cpu(dbeta), c)?),
        ])
    }
}

impl Tensor {
    /// `y = max(a + b, 0)` in one pass; `da = db = dy · [y > 0]` (the mask read off the
    /// output, as relu's is). `other` must have `self`'s shape for the fused kernel, and
    /// is broadcast by the composed ops otherwise.
    pub fn add_relu(&self, other: &Tensor) -> Result<Tensor> {
        check_same("add_relu", self, other)?;
        let fused = if self.shape() == other.shape() {
            let (a, b) = (self.storage(), other.storage());
            let parts = [&*a, &*b];
            host::<f32>(&parts)
                .map(|v| CpuStorage::from_vec(crate::cpu::fused::add_relu(v[0], v[1])))
                .or_else(|| {
                    host::<f64>(&parts)
                        .map(|v| CpuStorage::from_vec(crate::cpu::fused::add_relu(v[0], v[1])))
                })
        } else {
            None
        };
        let Some(s) = fused else {
            return self.add(other)?.relu();
        };
        Ok(Tensor::from_op(
            Storage::Cpu(s),
            self.shape().clone(),
            &[self, other],
            |out| AddReluBackward { out: out.detach() },
        ))
    }

    /// `y = max(z, 0)` with `z = batch_norm2d(self, ...)` (same arguments and
    /// running-statistics update as [`Tensor::batch_norm2d`]), in one pass forward and two
    /// backward. Gradient: batch norm's own backward of `dz = dy · [z > 0]`, the mask
    /// recomputed from `x` rather than stored.
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
        let st: Vec<_> = [self, gamma, beta, running_mean, running_var]
            .iter()
            .map(|t| t.storage())
            .collect();
        let parts: Vec<&Storage> = st.iter().map(|g| &**g).collect();
        if !training {
            let recorded = tape::is_recording() && inputs.iter().any(|t| t.requires_grad());
            fn eval<T: Float>(p: &[&Storage], d: &BatchNormDims, eps: f64) -> Option<CpuStorage> {
                let v = host::<T>(p)?;
                let y = forward_eval_act(v[0], [v[1], v[2], v[3], v[4]], d, eps, true);
                Some(CpuStorage::from_vec(y))
            }
            let fused = (!recorded)
                .then(|| {
                    eval::<f32>(&parts, &dims, eps).or_else(|| eval::<f64>(&parts, &dims, eps))
                })
                .flatten();
            drop(st);
            return match fused {
                Some(y) => Tensor::from_storage(Storage::Cpu(y), self.shape().clone()),
                None => composed(),
            };
        }
        if dims.n * dims.hw < 2 {
            drop(st);
            return composed(); // which reports the error
        }
        type Saved = (CpuStorage, [CpuStorage; 4]);
        fn train<T: Float>(p: &[&Storage], d: &BatchNormDims, eps: f64) -> Option<Saved> {
            let v = host::<T>(&p[..3])?;
            let (y, saved) = forward_train_act(v[0], v[1], v[2], d, eps, true);
            let s = saved.stats;
            Some((
                CpuStorage::from_vec(y),
                [s.mean, s.var, s.inv_std, saved.scale].map(CpuStorage::from_vec),
            ))
        }
        let fused = train::<f32>(&parts, &dims, eps).or_else(|| train::<f64>(&parts, &dims, eps));
        drop(st);
        let Some((y, [mean, var, inv_std, scale])) = fused else {
            return composed();
        };
        let c = [dims.c];
        let (mean_t, var_t) = (
            Tensor::from_storage(Storage::Cpu(mean.clone()), c)?,
            Tensor::from_storage(Storage::Cpu(var), c)?,
        );
        let m = dims.n * dims.hw;
        super::batch_norm::update_running(
            [running_mean, running_var],
            [&mean_t, &var_t],
            m,
            momentum,
        )?;
        Ok(Tensor::from_op(
            Storage::Cpu(y),
            self.shape().clone(),
            &inputs,
            |_| BatchNormReluBackward {
                dims,
                mean,
                inv_std,
                scale,
            },
        ))
    }
}
