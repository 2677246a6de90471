//! The losses the experiments compare, selected by one name ([`LossKind`]); a [`Criterion`]
//! turns one into the engine's fused op (`arbor_engine::ops::loss::FusedLoss`) batch by batch:
//!
//! | name | loss (`n` = training-set counts unless said) |
//! |---|---|
//! | `ce` | cross-entropy, optional label smoothing `eps` |
//! | `focal` | `-(1 - p_y)^gamma log p_y` (Lin et al. 2017), `gamma = 1` |
//! | `cb` | cross-entropy weighted by `(1 - beta)/(1 - beta^{n_y})`, normalised to sum to `C`, `beta = 0.9999` (Cui et al. 2019); weighted mean `sum_i w_i L_i / sum_i w_i` |
//! | `ldam` | cross-entropy of `s (z - m_y e_y)`, `m_j ∝ n_j^{-1/4}` with `max m = 0.5`, `s = 30` (Cao et al. 2019) |
//! | `ldam-drw` | `ldam`, class-balanced weights (`beta = 0.9999`) after epoch 160 |
//! | `bsm` | balanced softmax / logit adjustment: cross-entropy of `z + tau log n`, `tau = 1`, no clamp |
//! | `arb` | ARB-Loss (the engine's `arb_spec`): `bsm` with `tau = 1` on logits clamped to `±30`, counts global or per batch |
//!
//! Mixup is `lam L(z, a) + (1 - lam) L(z, b)` for all of them; soft targets work for
//! `ce`, `cb`, `bsm` and `arb` (focal and margins are defined for one target class).
//!
//! Also here: the gradient-balance diagnostic of the paper's analysis ([`diagnostic`]).
//! Which loss, its literature defaults and LDAM-DRW's epoch schedule are the experiments'
//! knowledge; the engine knows only the fused op and ARB-Loss itself.
mod criterion;
pub mod diagnostic;
mod kind;

pub use criterion::{class_balanced_weights, ldam_margins, Criterion};
pub use diagnostic::{ClassBalance, GradientBalance, GradientBalanceAccumulator};
pub use kind::{CountMode, Drw, LossKind};
