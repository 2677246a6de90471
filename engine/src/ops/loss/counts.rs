//! Class counts and the per-class quantities the losses derive from them.
use crate::error::{invalid, Result};

/// `n_j = #{i : labels_i = j}` for `j in 0..num_classes`: ARB-Loss's **batch** counts
/// (classes absent from the batch get 0). For mixup pass the un-mixed labels
/// ([`super::Target::labels`]). Labels outside `0..num_classes` are not counted (the loss
/// itself rejects them with an error naming the row).
pub fn batch_counts(labels: &[usize], num_classes: usize) -> Vec<f64> {
    let mut n = vec![0.0; num_classes];
    for &y in labels {
        if let Some(slot) = n.get_mut(y) {
            *slot += 1.0;
        }
    }
    n
}

/// Counts must have one finite, non-negative entry per class.
pub fn validate_counts(op: &'static str, counts: &[f64], num_classes: usize) -> Result<()> {
    if counts.len() != num_classes {
        return invalid(
            op,
            format!("{} class counts for {num_classes} classes", counts.len()),
        );
    }
    match counts.iter().position(|&n| !(n.is_finite() && n >= 0.0)) {
        Some(j) => invalid(
            op,
            format!(
                "count of class {j} is {}: counts must be finite and >= 0",
                counts[j]
            ),
        ),
        None => Ok(()),
    }
}

/// Like [`validate_counts`], and every class must have been seen (weights and margins
/// divide by the count).
pub fn validate_positive_counts(
    op: &'static str,
    counts: &[f64],
    num_classes: usize,
) -> Result<()> {
    validate_counts(op, counts, num_classes)?;
    match counts.iter().position(|&n| n == 0.0) {
        Some(j) => invalid(
            op,
            format!("class {j} has count 0; this loss needs every class seen"),
        ),
        None => Ok(()),
    }
}

/// `tau log n_j`, with `log 0 = -inf` (the class drops out of the softmax).
pub fn log_counts(counts: &[f64], tau: f64) -> Vec<f64> {
    counts
        .iter()
        .map(|&n| {
            if n > 0.0 {
                tau * n.ln()
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect()
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
