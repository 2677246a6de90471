//! [`Criterion`]: a [`LossKind`] with its reduction and the training set's class counts,
//! turned into the engine's [`FusedLoss`] for each batch (and epoch, for LDAM-DRW).
use super::{CountMode, LossKind};
use arbor_engine::error::{invalid, Result};
use arbor_engine::ops::loss::arb::{arb_spec, ArbOptions};
use arbor_engine::ops::loss::counts::{batch_counts, log_counts, validate_counts};
use arbor_engine::ops::loss::{logits_shape, FusedLoss, Reduction, Target};
use arbor_engine::Tensor;

/// A loss ready for training: its kind, reduction and the training set's class counts
/// (from which weights, margins and log-priors are derived once).
#[derive(Clone, Debug)]
pub struct Criterion {
    kind: LossKind,
    reduction: Reduction,
    train_counts: Vec<f64>,
    /// `bsm`'s `tau log n_j` of the training set.
    log_prior: Vec<f64>,
    margins: Vec<f64>,
    balanced_weights: Vec<f64>,
    /// ARB-Loss with global counts: the engine's spec, built once. Per batch it was 90 µs
    /// (8142 `ln`s and the counts' checks, on one thread) of a 1.6 ms fused loss at
    /// 512 x 8142.
    arb_global: Option<FusedLoss>,
}

impl Criterion {
    /// Checks the kind's parameters and the counts (`cb` and `ldam` need every class seen).
    pub fn new(kind: LossKind, reduction: Reduction, train_counts: &[f64]) -> Result<Self> {
        let op = kind.name();
        let c = train_counts.len();
        if c == 0 {
            return invalid(op, "no classes (empty counts)");
        }
        validate_counts(op, train_counts, c)?;
        let bad = |what: &str, v: f64| invalid(op, format!("{what} = {v} is not allowed"));
        let beta_ok = |b: f64| (0.0..1.0).contains(&b);
        let (mut log_prior, mut margins, mut balanced_weights) = (vec![], vec![], vec![]);
        match kind {
            LossKind::CrossEntropy { label_smoothing: e } if !(0.0..1.0).contains(&e) => {
                return bad("label smoothing", e)
            }
            LossKind::Focal { gamma } if !(gamma.is_finite() && gamma >= 0.0) => {
                return bad("gamma", gamma)
            }
            LossKind::ClassBalanced { beta } => {
                if !beta_ok(beta) {
                    return bad("beta", beta);
                }
                validate_positive_counts(op, train_counts, c)?;
                balanced_weights = class_balanced_weights(train_counts, beta);
            }
            LossKind::Ldam {
                max_margin,
                scale,
                drw,
            } => {
                if !(max_margin.is_finite() && max_margin > 0.0) {
                    return bad("max margin", max_margin);
                }
                if !(scale.is_finite() && scale > 0.0) {
                    return bad("scale", scale);
                }
                validate_positive_counts(op, train_counts, c)?;
                margins = ldam_margins(train_counts, max_margin);
                if let Some(d) = drw {
                    if !beta_ok(d.beta) {
                        return bad("beta", d.beta);
                    }
                    balanced_weights = class_balanced_weights(train_counts, d.beta);
                }
            }
            LossKind::BalancedSoftmax { tau } => {
                if !tau.is_finite() {
                    return bad("tau", tau);
                }
                log_prior = log_counts(train_counts, tau);
            }
            LossKind::Arb { .. } | LossKind::CrossEntropy { .. } | LossKind::Focal { .. } => {}
        }
        let arb_global = match kind {
            LossKind::Arb {
                counts: CountMode::Global,
                clamp,
            } => Some(arb_spec(train_counts, c, &ArbOptions { clamp, reduction })?),
            _ => None,
        };
        Ok(Criterion {
            kind,
            reduction,
            train_counts: train_counts.to_vec(),
            log_prior,
            margins,
            balanced_weights,
            arb_global,
        })
    }

    pub fn kind(&self) -> LossKind {
        self.kind
    }

    pub fn num_classes(&self) -> usize {
        self.train_counts.len()
    }

    /// The per-class weights in force at (1-indexed) `epoch`: always for `cb`, after the
    /// DRW epoch for `ldam-drw`, none otherwise.
    pub fn weights_for_epoch(&self, epoch: usize) -> Option<&[f64]> {
        match self.kind {
            LossKind::ClassBalanced { .. } => Some(&self.balanced_weights),
            LossKind::Ldam { drw: Some(d), .. } if epoch > d.after_epoch => {
                Some(&self.balanced_weights)
            }
            _ => None,
        }
    }

    /// The fused-kernel parameters for this batch at (1-indexed) `epoch`.
    pub fn spec(&self, target: &Target, epoch: usize) -> Result<FusedLoss> {
        let name = self.kind.name();
        let mut spec = FusedLoss::cross_entropy(name, self.reduction);
        if let Some(w) = self.weights_for_epoch(epoch) {
            spec.weights = w.to_vec();
        }
        match self.kind {
            LossKind::CrossEntropy { label_smoothing } => spec.smoothing = label_smoothing,
            LossKind::Focal { gamma } => spec.gamma = gamma,
            LossKind::ClassBalanced { .. } => {}
            LossKind::Ldam { scale, .. } => {
                spec.margins = self.margins.clone();
                spec.scale = scale;
            }
            LossKind::BalancedSoftmax { .. } => spec.offsets = self.log_prior.clone(),
            LossKind::Arb { clamp, .. } => {
                // The engine's own ARB-Loss, so there is one definition of it: with global
                // counts built in `new`, with batch counts here.
                let arb = match &self.arb_global {
                    Some(global) => global.clone(),
                    None => {
                        let Some(labels) = target.labels() else {
                            return invalid(name, "batch counts need hard or mixup labels; soft targets carry none (use global counts)");
                        };
                        let batch = batch_counts(labels, self.num_classes());
                        let opts = ArbOptions {
                            clamp,
                            reduction: self.reduction,
                        };
                        arb_spec(&batch, self.num_classes(), &opts)?
                    }
                };
                return Ok(FusedLoss { name, ..arb });
            }
        }
        Ok(spec)
    }

    /// The loss of `logits` against `target` at (1-indexed) `epoch`.
    pub fn loss(&self, logits: &Tensor, target: &Target, epoch: usize) -> Result<Tensor> {
        self.check_classes(logits)?;
        logits.fused_loss(&self.spec(target, epoch)?, target)
    }

    /// [`Criterion::loss`] and the saved per-row gradient (see [`Tensor::fused_loss_with_grad`]).
    pub fn loss_with_grad(
        &self,
        logits: &Tensor,
        target: &Target,
        epoch: usize,
    ) -> Result<(Tensor, Tensor)> {
        self.check_classes(logits)?;
        logits.fused_loss_with_grad(&self.spec(target, epoch)?, target)
    }

    /// The logits must have one column per counted class.
    fn check_classes(&self, logits: &Tensor) -> Result<()> {
        let (_, cols) = logits_shape(self.kind.name(), logits)?;
        if cols != self.num_classes() {
            return invalid(
                self.kind.name(),
                format!(
                    "{cols} logit columns but {} class counts",
                    self.num_classes()
                ),
            );
        }
        Ok(())
    }
}

/// Like [`validate_counts`], and every class must have been seen (weights and margins
/// divide by the count).
fn validate_positive_counts(op: &'static str, counts: &[f64], num_classes: usize) -> Result<()> {
    validate_counts(op, counts, num_classes)?;
    match counts.iter().position(|&n| n == 0.0) {
        Some(j) => invalid(
            op,
            format!("class {j} has count 0; this loss needs every class seen"),
        ),
        None => Ok(()),
    }
}

/// Class-balanced weights (Cui et al. 2019): `w_j = (1 - beta) / (1 - beta^{n_j})`,
/// normalised to sum to `C`. Counts must be positive.
pub fn class_balanced_weights(counts: &[f64], beta: f64) -> Vec<f64> {
    // 1 - beta^n = -expm1(n ln beta): exact even when beta^n is close to 1.
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| (1.0 - beta) / -(n * beta.ln()).exp_m1())
        .collect();
    let total: f64 = raw.iter().sum();
    let c = counts.len() as f64;
    raw.into_iter().map(|w| w * c / total).collect()
}

/// LDAM margins (Cao et al. 2019): `m_j ∝ n_j^{-1/4}`, rescaled so the largest is
/// `max_margin`. Counts must be positive.
pub fn ldam_margins(counts: &[f64], max_margin: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts.iter().map(|&n| n.powf(-0.25)).collect();
    let largest = raw.iter().copied().fold(0.0, f64::max);
    raw.into_iter().map(|m| m * max_margin / largest).collect()
}
