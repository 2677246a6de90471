//! The fused loss's contract with the backends: [`FusedLossParams`] in, [`FusedLossOut`]
//! back (the op in `ops/loss` builds the parameters from a loss configuration).
use crate::Result;

/// What the fused loss kernel needs to know, in per-class and per-row terms (the op in
/// `ops/loss` builds it from a loss configuration). For row `i` the kernel forms
///
/// ```text
/// u_ij = scale * clamp(z_ij) + offset_j          (offset_j = -inf drops class j)
/// ```
///
/// and writes `grad_scale * dl_i/dz_i` once, where `l_i` is row `i`'s loss:
/// - hard targets (`labels` non-empty): `per_row` components `(c, coef)` per row;
///   component `k` is the cross-entropy of `u` with `margins[c]` (times `scale`) taken off
///   the target logit, optionally focal (`(1 - p)^gamma`), and label smoothing `smoothing`
///   mixes a uniform target in: `l_i = sum_k coef_k ((1 - eps) L_k + eps (lse(u) - mean_j u_j))`;
/// - dense targets (`labels` empty, a `[rows, cols]` target storage given):
///   `l_i = sum_j w_j t_ij (lse(u_i) - u_ij)`, `w` = `weights` (or 1).
#[derive(Clone, Copy, Debug)]
pub struct FusedLossParams<'a> {
    pub rows: usize,
    pub cols: usize,
    /// Target classes, `per_row` per row, row-major (empty for dense targets).
    pub labels: &'a [usize],
    /// One coefficient per entry of `labels`.
    pub coefs: &'a [f64],
    pub per_row: usize,
    /// Additive logit offset per class (`cols` values; `-inf` drops the class), or empty for 0.
    pub offsets: &'a [f64],
    /// Margin per class subtracted from the target logit (before `scale`), or empty.
    pub margins: &'a [f64],
    /// Per-class weight of a dense target, or empty for 1.
    pub weights: &'a [f64],
    pub scale: f64,
    /// Logits are clamped into `[-clamp, clamp]`; no gradient flows from outside it.
    pub clamp: Option<f64>,
    pub gamma: f64,
    pub smoothing: f64,
    /// Multiplies the written gradient (so a mean's `1/B` costs no extra pass).
    pub grad_scale: f64,
}

impl FusedLossParams<'_> {
    /// Most target components per row a kernel accepts (mixup's two labels).
    pub const MAX_COMPONENTS: usize = 2;

    /// One hard label per row and no margins, focal term or smoothing (ARB, cross-entropy,
    /// balanced softmax, class-balanced weights): the case kernels special-case.
    pub fn is_plain_hard(&self) -> bool {
        self.per_row == 1
            && !self.labels.is_empty()
            && self.margins.is_empty()
            && self.gamma == 0.0
            && self.smoothing == 0.0
    }

    /// Checks that the parameters agree with the logits (`z_len` values) and the dense
    /// target (`dense_len`), before any backend indexes with them (labels become indices).
    pub fn validate(&self, z_len: usize, dense_len: Option<usize>) -> Result<()> {
        let n = self.rows * self.cols;
        let per_class_ok = |v: &[f64]| v.is_empty() || v.len() == self.cols;
        let bad = if z_len != n {
            Some(format!("{z_len} logits for [{}, {}]", self.rows, self.cols))
        } else if !(per_class_ok(self.offsets)
            && per_class_ok(self.margins)
            && per_class_ok(self.weights))
        {
            Some(format!(
                "per-class parameters must have {} entries",
                self.cols
            ))
        } else if let Some(len) = dense_len {
            (len != n).then(|| format!("{len} target values for [{}, {}]", self.rows, self.cols))
        } else if !(1..=Self::MAX_COMPONENTS).contains(&self.per_row)
            || self.labels.len() != self.rows * self.per_row
            || self.coefs.len() != self.labels.len()
        {
            Some(format!(
                "{} labels and {} coefficients for {} rows of {} components",
                self.labels.len(),
                self.coefs.len(),
                self.rows,
                self.per_row
            ))
        } else {
            self.labels
                .iter()
                .find(|&&c| c >= self.cols)
                .map(|c| format!("label {c} out of range for {} classes", self.cols))
        };
        match bad {
            Some(msg) => Err(crate::Error::Invalid {
                op: "fused_loss",
                msg,
            }),
            None => Ok(()),
        }
    }
}

/// What the fused loss kernel returns: each row's loss (`[rows]`) and the gradient of
/// the rows' losses w.r.t. the logits, times `grad_scale` (`[rows, cols]`).
pub struct FusedLossOut<S> {
    pub row_loss: S,
    pub grad: S,
}
