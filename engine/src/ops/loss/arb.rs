//! ARB-Loss (Xie et al. 2023), as defined in `shared/spec/arb-loss.md`:
//!
//! ```text
//! z~ = clamp(z, -30, 30)
//! L_i = -log( exp(z~_{i,y_i}) / sum_j (n_j / n_{y_i}) exp(z~_ij) )
//!     = logsumexp_j( z~_ij + log n_j ) - ( z~_{i,y_i} + log n_{y_i} )
//! dL_i/dz_ij = (p_ij - [j = y_i]) [-30 <= z_ij <= 30],
//! p_ij = n_j exp(z~_ij) / sum_k n_k exp(z~_ik)
//! ```
//!
//! with `log 0 = -inf`: a class with `n_j = 0` gets no repulsion. Counts are the training
//! set's (**global**) or the batch's (**batch**, from [`super::batch_counts`]). Mixup and
//! soft targets replace `e_{y_i}` by `t_i`: `L_i = logsumexp_j(z~_ij + log n_j) - sum_j
//! t_ij (z~_ij + log n_j)`, gradient `p_i - t_i`.
use super::counts::{log_counts, validate_counts};
use super::validate::logits_shape;
use super::{FusedLoss, Reduction, Target};
use crate::error::Result;
use crate::Tensor;

/// The reference clamps logits into `[-30, 30]` before `exp`.
pub const ARB_CLAMP: f64 = 30.0;

/// ARB-Loss options beyond the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArbOptions {
    /// Clamp logits into `[-30, 30]` (the reference's behaviour; on by default).
    pub clamp: bool,
    pub reduction: Reduction,
}

impl Default for ArbOptions {
    fn default() -> Self {
        ArbOptions {
            clamp: true,
            reduction: Reduction::Mean,
        }
    }
}

/// ARB-Loss as a [`FusedLoss`], after checking `counts` (`C` finite, non-negative values):
/// the one definition, which [`arb_loss`] and the experiments' `Criterion` both use. For
/// the saved per-row gradient, run it with [`Tensor::fused_loss_with_grad`].
pub fn arb_spec(counts: &[f64], num_classes: usize, opts: &ArbOptions) -> Result<FusedLoss> {
    validate_counts("arb_loss", counts, num_classes)?;
    Ok(FusedLoss {
        offsets: log_counts(counts, 1.0),
        clamp: opts.clamp.then_some(ARB_CLAMP),
        ..FusedLoss::cross_entropy("arb_loss", opts.reduction)
    })
}

/// ARB-Loss of logits `[B, C]` with class counts `counts` (`[C]`: global counts, or
/// [`super::batch_counts`] of the batch's labels). Errors name the offending row, label or
/// class: a label `>= C`, a target class with `n = 0`, bad counts, a non-finite logit,
/// `B = 0`, mixup `lam` outside `[0, 1]`, a soft row that is not a distribution.
/// The formula and its gradient `dL_i/dz_i = (p_i - e_{y_i}) [|z_i| <= 30]` (over `B` for
/// the mean) are the module docs'.
///
/// ```
/// use arbor_engine::ops::loss::{arb_loss, ArbOptions, Target};
/// use arbor_engine::Tensor;
/// // One row, two classes seen 1 and 3 times: equal logits give p = n / sum(n) = [1/4, 3/4].
/// let z = Tensor::parameter(vec![0.0f64, 0.0], [1, 2])?;
/// let loss = arb_loss(&z, &Target::Hard(vec![0]), &[1.0, 3.0], &ArbOptions::default())?;
/// assert!((loss.item()? - 4f64.ln()).abs() < 1e-12); // -log(1/4)
/// loss.backward()?;
/// let g = z.grad().unwrap().to_vec::<f64>()?;
/// assert!((g[0] + 0.75).abs() < 1e-12 && (g[1] - 0.75).abs() < 1e-12); // p - e_0
/// # Ok::<(), arbor_engine::Error>(())
/// ```
pub fn arb_loss(
    logits: &Tensor,
    target: &Target,
    counts: &[f64],
    opts: &ArbOptions,
) -> Result<Tensor> {
    let (_, cols) = logits_shape("arb_loss", logits)?;
    logits.fused_loss(&arb_spec(counts, cols, opts)?, target)
}
