//! The losses by name: [`LossKind`] with the literature's defaults, ARB-Loss's
//! [`CountMode`] and LDAM-DRW's re-weighting schedule ([`Drw`]).
use arbor_engine::error::{invalid, Error, Result};
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
