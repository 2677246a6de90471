//! The losses the experiments compare, selected by one name, each a [`FusedLoss`]:
//!
//! | name | loss (`n` = training-set counts unless said) |
//! |---|---|
//! | `ce` | cross-entropy, optional label smoothing `eps` |
//! | `focal` | `-(1 - p_y)^gamma log p_y` (Lin et al. 2017), `gamma = 1` |
//! | `cb` | cross-entropy weighted by `(1 - beta)/(1 - beta^{n_y})`, normalised to sum to `C`, `beta = 0.9999` (Cui et al. 2019); weighted mean `sum_i w_i L_i / sum_i w_i` |
//! | `ldam` | cross-entropy of `s (z - m_y e_y)`, `m_j ∝ n_j^{-1/4}` with `max m = 0.5`, `s = 30` (Cao et al. 2019) |
//! | `ldam-drw` | `ldam`, class-balanced weights (`beta = 0.9999`) after epoch 160 |
//! | `bsm` | balanced softmax / logit adjustment: cross-entropy of `z + tau log n`, `tau = 1`, no clamp |
//! | `arb` | ARB-Loss ([`super::arb`]): `bsm` with `tau = 1` on logits clamped to `±30`, counts global or per batch |
//!
//! Mixup is `lam L(z, a) + (1 - lam) L(z, b)` for all of them; soft targets work for
//! `ce`, `cb`, `bsm` and `arb` (focal and margins are defined for one target class).
use super::counts::{
    batch_counts, class_balanced_weights, ldam_margins, log_counts, validate_counts,
    validate_positive_counts,
};
use super::validate::logits_shape;
use super::{FusedLoss, Reduction, Target, ARB_CLAMP};
use crate::error::{invalid, Error, Result};
use crate::Tensor;
use std::fmt;
use std::str::FromStr;

/// Where ARB-Loss takes its class counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CountMode {
    /// The training set's counts (the reference's `arb_loss_use_global_class_cnt`).
    Global,
    /// The counts of the batch's (un-mixed) labels: the reference's default.
    #[default]
    Batch,
}

impl FromStr for CountMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "global" => Ok(CountMode::Global),
            "batch" => Ok(CountMode::Batch),
            _ => invalid(
                "counts",
                format!("unknown count mode {s:?}; valid: global, batch"),
            ),
        }
    }
}

/// Deferred re-weighting: class-balanced weights from a given epoch on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drw {
    /// Re-weighting is on for (1-indexed) epochs `> after_epoch`: the reference's
    /// 0-indexed `epoch >= 160`.
    pub after_epoch: usize,
    pub beta: f64,
}

/// A loss by name; `from_str` gives the literature's defaults, the fields can be changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    CrossEntropy {
        label_smoothing: f64,
    },
    Focal {
        gamma: f64,
    },
    ClassBalanced {
        beta: f64,
    },
    Ldam {
        max_margin: f64,
        scale: f64,
        drw: Option<Drw>,
    },
    BalancedSoftmax {
        tau: f64,
    },
    Arb {
        counts: CountMode,
        clamp: bool,
    },
}

impl LossKind {
    /// Every name [`LossKind::from_str`] accepts.
    pub const NAMES: [&'static str; 7] = ["ce", "focal", "cb", "ldam", "ldam-drw", "bsm", "arb"];

    pub fn name(&self) -> &'static str {
        match self {
            LossKind::CrossEntropy { .. } => "ce",
            LossKind::Focal { .. } => "focal",
            LossKind::ClassBalanced { .. } => "cb",
            LossKind::Ldam { drw: None, .. } => "ldam",
            LossKind::Ldam { drw: Some(_), .. } => "ldam-drw",
            LossKind::BalancedSoftmax { .. } => "bsm",
            LossKind::Arb { .. } => "arb",
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        const BETA: f64 = 0.9999;
        let ldam = |drw| LossKind::Ldam {
            max_margin: 0.5,
            scale: 30.0,
            drw,
        };
        Ok(match s {
            "ce" => LossKind::CrossEntropy {
                label_smoothing: 0.0,
            },
            "focal" => LossKind::Focal { gamma: 1.0 },
            "cb" => LossKind::ClassBalanced { beta: BETA },
            "ldam" => ldam(None),
            "ldam-drw" => ldam(Some(Drw {
                after_epoch: 160,
                beta: BETA,
            })),
            "bsm" => LossKind::BalancedSoftmax { tau: 1.0 },
            "arb" => LossKind::Arb {
                counts: CountMode::Batch,
                clamp: true,
            },
            _ => {
                return invalid(
                    "loss",
                    format!("unknown loss {s:?}; valid: {}", LossKind::NAMES.join(", ")),
                )
            }
        })
    }
}

/// A loss ready for training: its kind, reduction and the training set's class counts
/// (from which weights, margins and log-priors are derived once).
#[derive(Clone, Debug)]
pub struct Criterion {
    kind: LossKind,
    reduction: Reduction,
    train_counts: Vec<f64>,
    /// `log n_j` of the training set (`tau` applied for `bsm`).
    log_prior: Vec<f64>,
    margins: Vec<f64>,
    balanced_weights: Vec<f64>,
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
            LossKind::Arb { .. } => log_prior = log_counts(train_counts, 1.0),
            LossKind::CrossEntropy { .. } | LossKind::Focal { .. } => {}
        }
        Ok(Criterion {
            kind,
            reduction,
            train_counts: train_counts.to_vec(),
            log_prior,
            margins,
            balanced_weights,
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
            LossKind::Arb { counts, clamp } => {
                spec.clamp = clamp.then_some(ARB_CLAMP);
                spec.offsets = match counts {
                    CountMode::Global => self.log_prior.clone(),
                    CountMode::Batch => {
                        let Some(labels) = target.labels() else {
                            return invalid(name, "batch counts need hard or mixup labels; soft targets carry none (use global counts)");
                        };
                        log_counts(&batch_counts(labels, self.num_classes()), 1.0)
                    }
                };
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
