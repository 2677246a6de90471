//! Class counts, and the log-prior ARB-Loss derives from them.
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
