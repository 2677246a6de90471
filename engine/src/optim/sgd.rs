//! SGD with momentum and weight decay, PyTorch's update rule:
//!
//! ```text
//! v = momentum * v + (g + weight_decay * p)
//! p = p - lr * v
//! ```
//!
//! (PyTorch starts the momentum buffer at the first step's `g + wd p`, which is what a zero
//! buffer gives here.) The update runs as one fused kernel per parameter.
use crate::error::{Error, Result};
use crate::{DType, Tensor};

/// Parameters that share a weight decay and a learning-rate multiplier.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub params: Vec<Tensor>,
    pub weight_decay: f64,
    /// This group's learning rate is `lr * lr_scale`.
    pub lr_scale: f64,
}

impl ParamGroup {
    pub fn new(params: Vec<Tensor>, weight_decay: f64) -> Self {
        ParamGroup {
            params,
            weight_decay,
            lr_scale: 1.0,
        }
    }
}

/// Momentum buffers, in parameter order, for checkpoints (f32 or f64 values as f64).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdState {
    pub velocities: Vec<Option<Vec<f64>>>,
}

pub struct Sgd {
    groups: Vec<ParamGroup>,
    velocities: Vec<Vec<Option<Tensor>>>,
    pub lr: f64,
    pub momentum: f64,
}

impl Sgd {
    /// One group, every parameter with the same weight decay.
    pub fn new(params: Vec<Tensor>, lr: f64, momentum: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params, weight_decay)], lr, momentum)
    }

    pub fn with_groups(groups: Vec<ParamGroup>, lr: f64, momentum: f64) -> Result<Self> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(lr)
            || !ok(momentum)
            || groups
                .iter()
                .any(|g| !ok(g.weight_decay) || !ok(g.lr_scale))
        {
            return Err(Error::Invalid {
                op: "sgd",
                msg: format!(
                    "lr {lr}, momentum {momentum} and weight decays must be finite and >= 0"
                ),
            });
        }
        if let Some(p) = groups
            .iter()
            .flat_map(|g| &g.params)
            .find(|p| !p.requires_grad())
        {
            return Err(Error::Invalid {
                op: "sgd",
                msg: format!("{p:?} is not a parameter (requires_grad is off)"),
            });
        }
        let velocities = groups.iter().map(|g| vec![None; g.params.len()]).collect();
        Ok(Sgd {
            groups,
            velocities,
            lr,
            momentum,
        })
    }

    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// Applies one update to every parameter that has a gradient.
    pub fn step(&mut self) -> Result<()> {
        for (group, vels) in self.groups.iter().zip(self.velocities.iter_mut()) {
            let lr = self.lr * group.lr_scale;
            for (p, v) in group.params.iter().zip(vels.iter_mut()) {
                let Some(g) = p.grad() else { continue };
                if g.shape() != p.shape() {
                    return Err(Error::Shape {
                        op: "sgd",
                        msg: format!("gradient {:?} for parameter {:?}", g.shape(), p.shape()),
                    });
                }
                let vel = match v {
                    Some(v) => v,
                    None => v.insert(p.zeros_like()?),
                };
                let grad = g.storage();
                let mut vs = vel.storage_mut();
                p.storage_mut().sgd_update(
                    &grad,
                    &mut vs,
                    lr,
                    self.momentum,
                    group.weight_decay,
                )?;
            }
        }
        Ok(())
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&self) {
        for p in self.groups.iter().flat_map(|g| &g.params) {
            p.zero_grad();
        }
    }

    /// The momentum buffers, for a checkpoint.
    pub fn state(&self) -> Result<SgdState> {
        let velocities = self
            .velocities
            .iter()
            .flatten()
            .map(|v| v.as_ref().map(|t| t.to_vec_f64()).transpose())
            .collect::<Result<_>>()?;
        Ok(SgdState { velocities })
    }

    /// Restores momentum buffers saved by [`Sgd::state`] for the same parameter list.
    pub fn load_state(&mut self, state: &SgdState) -> Result<()> {
        let total: usize = self.velocities.iter().map(|v| v.len()).sum();
        if state.velocities.len() != total {
            return Err(Error::Invalid {
                op: "sgd",
                msg: format!(
                    "checkpoint has {} momentum buffers, the model has {total} parameters",
                    state.velocities.len()
                ),
            });
        }
        let mut saved = state.velocities.iter();
        for (group, vels) in self.groups.iter().zip(self.velocities.iter_mut()) {
            for (p, v) in group.params.iter().zip(vels.iter_mut()) {
                *v = match saved.next().and_then(|s| s.as_ref()) {
                    None => None,
                    Some(values) => {
                        if values.len() != p.numel() {
                            return Err(Error::Shape {
                                op: "sgd",
                                msg: format!(
                                    "momentum buffer of {} values for parameter {:?}",
                                    values.len(),
                                    p.shape()
                                ),
                            });
                        }
                        let t = Tensor::from_vec(values.clone(), p.shape().clone())?;
                        let t = if p.dtype() == DType::F64 {
                            t
                        } else {
                            t.to_dtype(p.dtype())?
                        };
                        Some(t.to_device(p.device())?)
                    }
                };
            }
        }
        Ok(())
    }
}
