//! Fused classification losses: ARB-Loss (`arb.rs`) and every baseline it is compared
//! against are one op whose kernel computes every row's loss and its gradient in one pass
//! over the logits (`cpu/loss/`, `cuda/kernels/loss.cu`). The op's backward only rescales
//! the saved gradient. Choosing a loss by name and its schedule belong to the experiments
//! (`arbor_models::loss`); the engine knows the fused op and ARB-Loss itself.
//!
//! Every loss here is one [`FusedLoss`]: per-class additive logit offsets `o`, margins
//! `m`, weights `w`, a logit scale `s`, an optional clamp, a focal exponent `gamma` and
//! label smoothing `eps`. For logits `z` (`[B, C]`), row `i` and a hard target class `c`:
//!
//! ```text
//! u_ij = s clamp(z_ij) + o_j            (o_j = -inf: class j drops out)
//! u'_ij = u_ij - s m_c [j = c]          (the margin lowers the target logit)
//! p_ij = softmax_j(u'_i),   L_i = (1 - p_ic)^gamma (-log p_ic)
//! ```
//!
//! Mixup targets `(a, b, lam)` give `lam L(z, a) + (1 - lam) L(z, b)`; soft targets `t`
//! give `sum_j w_j t_ij (logsumexp_j u_ij - u_ij)`. See [`FusedLoss`] for the weights,
//! smoothing and reductions, and `validate.rs` for what is rejected.
pub mod arb;
pub mod counts;
mod validate;

pub use arb::{arb_loss, arb_spec, ArbOptions, ARB_CLAMP};
pub use counts::batch_counts;
pub use validate::logits_shape;

use crate::backend::{FusedLossParams, ReduceOp, UnaryOp};
use crate::error::{invalid, Error, Result};
use crate::tape::Backward;
use crate::{Shape, Tensor};
use std::str::FromStr;

/// The targets of a batch.
#[derive(Clone, Debug)]
pub enum Target {
    /// One label per row.
    Hard(Vec<usize>),
    /// Mixup: rows are `lam x_a + (1 - lam) x_b`; `a` are the batch's own (un-mixed)
    /// labels and `b` their partners'.
    Mixup {
        a: Vec<usize>,
        b: Vec<usize>,
        lam: f64,
    },
    /// A probability row per sample (`[B, C]`, same dtype and device as the logits). No
    /// gradient flows into it.
    Soft(Tensor),
}

impl Target {
    /// The labels batch counts are taken from: the hard labels, or mixup's un-mixed `a`.
    /// Soft targets have none.
    pub fn labels(&self) -> Option<&[usize]> {
        match self {
            Target::Hard(y) => Some(y),
            Target::Mixup { a, .. } => Some(a),
            Target::Soft(_) => None,
        }
    }
}

/// How the per-row losses `l_i` become the op's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// `(1/B) sum_i l_i` (a scalar). With class weights and hard or mixup targets, `l_i`
    /// is normalised so this is PyTorch's weighted mean `sum_i w_i L_i / sum_i w_i`.
    #[default]
    Mean,
    /// `sum_i l_i` (a scalar).
    Sum,
    /// The vector `[l_1 .. l_B]`.
    None,
}

impl FromStr for Reduction {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            "none" => Ok(Reduction::None),
            _ => invalid(
                "reduction",
                format!("unknown reduction {s:?}; valid: mean, sum, none"),
            ),
        }
    }
}

/// A fused loss in per-class terms (built by [`arb_spec`], or by the experiments' losses
/// in `arbor_models::loss`).
///
/// Per-class vectors are either empty (the neutral value) or have one entry per class.
/// - `offsets`: added to the scaled logits (ARB and balanced softmax: `tau log n_j`).
/// - `margins`: LDAM's `m_j`, subtracted from the target logit before scaling.
/// - `weights`: hard/mixup targets: sample `i` weighs `w_{y_i}` (each mixup half with
///   its own label's weight and its own weighted-mean normaliser); soft targets:
///   `-sum_j w_j t_ij log p_ij`, averaged over rows (PyTorch's rules).
/// - `smoothing` `eps`: hard/mixup only, `(1 - eps) L_i + eps (logsumexp u_i - mean_j u_ij)`.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedLoss {
    /// The loss's name, used in error messages.
    pub name: &'static str,
    pub offsets: Vec<f64>,
    pub margins: Vec<f64>,
    pub weights: Vec<f64>,
    pub scale: f64,
    /// Clamp logits into `[-c, c]` before anything else (ARB: 30).
    pub clamp: Option<f64>,
    pub gamma: f64,
    pub smoothing: f64,
    pub reduction: Reduction,
}

impl FusedLoss {
    /// Plain cross-entropy with the given name; set the fields that differ.
    pub fn cross_entropy(name: &'static str, reduction: Reduction) -> Self {
        FusedLoss {
            name,
            offsets: vec![],
            margins: vec![],
            weights: vec![],
            scale: 1.0,
            clamp: None,
            gamma: 0.0,
            smoothing: 0.0,
            reduction,
        }
    }
}

/// The op's backward: the saved gradient times the upstream value(s).
#[derive(Debug)]
struct FusedLossBackward {
    /// `dl_i/dz_i` for every row, already multiplied by `1/B` for a mean unless the
    /// caller asked for the unscaled rows (then `pending` holds the `1/B`).
    grad: Tensor,
    pending: f64,
    reduction: Reduction,
}

impl Backward for FusedLossBackward {
    fn backward(&self, g: &Tensor, _inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let gz = match self.reduction {
            // Row `i` scaled by its upstream value (`pending` is 1: there is no mean).
            Reduction::None => self.grad.mul(&g.reshape([self.grad.dims()[0], 1])?)?,
            Reduction::Mean | Reduction::Sum => match g.item()? * self.pending {
                // `loss.backward()` seeds 1: the saved gradient is the answer, no pass needed.
                1.0 => self.grad.clone(),
                s => self.grad.scale(s)?,
            },
        };
        Ok(vec![Some(gz)])
    }
}

impl Tensor {
    /// The fused loss of logits `self` (`[B, C]`) against `target`. One pass per row
    /// computes the loss and writes `dL/dz` once; the backward scales that saved gradient
    /// by the upstream value (per row for [`Reduction::None`]).
    /// `L` is the module docs' formula; `dz = dy · G` with `G = dL/dz` as the forward
    /// pass wrote it (plain cross-entropy, mean: `G_i = (softmax(z_i) - onehot(y_i)) / B`).
    pub fn fused_loss(&self, spec: &FusedLoss, target: &Target) -> Result<Tensor> {
        Ok(fused(self, spec, target, true)?.0)
    }

    /// [`Tensor::fused_loss`], also returning the saved per-row gradient `dl_i/dz_i`
    /// (`[B, C]`, detached) *without* the mean's `1/B`: for ARB and cross-entropy with hard
    /// or mixup targets it is `(p_i - t_i) * mask_i`, what the gradient-balance
    /// diagnostic (`arbor_models::loss::diagnostic`) needs. The backward then costs one extra scaling pass.
    pub fn fused_loss_with_grad(
        &self,
        spec: &FusedLoss,
        target: &Target,
    ) -> Result<(Tensor, Tensor)> {
        fused(self, spec, target, false)
    }
}

/// Validates, runs the kernel and records the op. `prescale` folds the mean's `1/B` into
/// the kernel's gradient write.
fn fused(
    logits: &Tensor,
    spec: &FusedLoss,
    target: &Target,
    prescale: bool,
) -> Result<(Tensor, Tensor)> {
    let (rows, cols) = validate::check(logits, spec, target)?;
    let mean_scale = match spec.reduction {
        Reduction::Mean => 1.0 / rows as f64,
        Reduction::Sum | Reduction::None => 1.0,
    };
    let (grad_scale, pending) = if prescale {
        (mean_scale, 1.0)
    } else {
        (1.0, mean_scale)
    };
    let (labels, coefs, per_row) = components(spec, target, rows);
    let dense = match target {
        Target::Soft(t) => Some(t.storage()),
        Target::Hard(_) | Target::Mixup { .. } => None,
    };
    let params = FusedLossParams {
        rows,
        cols,
        labels: &labels,
        coefs: &coefs,
        per_row,
        offsets: &spec.offsets,
        margins: &spec.margins,
        // Hard-target weights are folded into `coefs`; the kernel weighs dense rows only.
        weights: if dense.is_some() { &spec.weights } else { &[] },
        scale: spec.scale,
        clamp: spec.clamp,
        gamma: spec.gamma,
        smoothing: spec.smoothing,
        grad_scale,
    };
    let out = logits
        .storage()
        .fused_loss(dense.as_deref(), &params)
        .map_err(|e| match e {
            // Name the loss the caller asked for, not the shared kernel.
            Error::Invalid { msg, .. } => Error::Invalid { op: spec.name, msg },
            e => e,
        })?;
    drop(dense);
    let grad = Tensor::from_storage(out.grad, logits.shape().clone())?;
    let rows_shape = Shape::new([rows]);
    let (loss, shape) = match spec.reduction {
        Reduction::None => (out.row_loss, rows_shape),
        Reduction::Sum | Reduction::Mean => {
            let total = out.row_loss.reduce(ReduceOp::Sum, &rows_shape, 0)?;
            let total = match spec.reduction {
                Reduction::Mean => total.unary(UnaryOp::Affine {
                    mul: mean_scale,
                    add: 0.0,
                })?,
                _ => total,
            };
            (total, Shape::scalar())
        }
    };
    let saved = grad.clone();
    let loss = Tensor::from_op(loss, shape, &[logits], |_| FusedLossBackward {
        grad: saved,
        pending,
        reduction: spec.reduction,
    });
    Ok((loss, grad))
}

/// The kernel's hard-target components: `(labels, coefs, per_row)`, with class weights and
/// the weighted mean's normaliser folded into the coefficients. Empty for soft targets.
fn components(spec: &FusedLoss, target: &Target, rows: usize) -> (Vec<usize>, Vec<f64>, usize) {
    // Coefficients of one labelling: `w_y`, times `B / sum_i w_{y_i}` for a weighted mean
    // so that `(1/B) sum_i l_i` is `sum_i w_i L_i / sum_i w_i`.
    let weighted = |y: &[usize], lam: f64| -> Vec<f64> {
        if spec.weights.is_empty() {
            return vec![lam; y.len()];
        }
        let w: Vec<f64> = y.iter().map(|&c| spec.weights[c]).collect();
        let norm = match spec.reduction {
            Reduction::Mean => rows as f64 / w.iter().sum::<f64>(),
            Reduction::Sum | Reduction::None => 1.0,
        };
        w.into_iter().map(|w| lam * w * norm).collect()
    };
    match target {
        Target::Hard(y) => (y.clone(), weighted(y, 1.0), 1),
        Target::Mixup { a, b, lam } => {
            let (ca, cb) = (weighted(a, *lam), weighted(b, 1.0 - lam));
            let labels = a.iter().zip(b).flat_map(|(&x, &y)| [x, y]).collect();
            let coefs = ca.into_iter().zip(cb).flat_map(|(x, y)| [x, y]).collect();
            (labels, coefs, 2)
        }
        Target::Soft(_) => (vec![], vec![], 1),
    }
}
