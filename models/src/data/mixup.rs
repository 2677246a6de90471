//! Mixup (Zhang et al. 2018) as the MiSLAS code base applies it to a whole batch.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Beta, Distribution};

use super::{Batch, DataError};

/// What the loss needs after mixing: `lam * CE(logits, labels_a) + (1 - lam) *
/// CE(logits, labels_b)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixup {
    /// The batch's own labels.
    pub labels_a: Vec<u32>,
    /// The partners' labels, `labels_a[partner[i]]`.
    pub labels_b: Vec<u32>,
    /// Weight of the batch's own images and labels, in [0, 1].
    pub lam: f32,
    /// Image `i` was mixed with image `partner[i]` (a permutation of the batch).
    pub partner: Vec<usize>,
}

/// Mixes `batch.images` in place: `x_i <- lam * x_i + (1 - lam) * x_partner(i)` with
/// `lam ~ Beta(alpha, alpha)` drawn first, then `partner` a uniform permutation, as the
/// reference does (`np.random.beta`, then `torch.randperm`).
pub fn mixup<R: Rng + ?Sized>(
    batch: &mut Batch,
    alpha: f64,
    rng: &mut R,
) -> Result<Mixup, DataError> {
    let beta = Beta::new(alpha, alpha)
        .map_err(|e| DataError::invalid(format!("mixup alpha {alpha}: {e}")))?;
    let sample_len = batch.sample_len();
    if batch.images.len() != batch.len() * sample_len {
        return Err(DataError::invalid(format!(
            "mixup: batch of {} labels with shape {:?} holds {} values",
            batch.len(),
            batch.shape,
            batch.images.len()
        )));
    }
    let lam = beta.sample(rng) as f32;
    let mut partner: Vec<usize> = (0..batch.len()).collect();
    partner.shuffle(rng);

    // Partners are read from an untouched copy, since mixing in place overwrites them.
    let original = batch.images.clone();
    for (i, out) in batch.images.chunks_mut(sample_len.max(1)).enumerate() {
        let other = &original[partner[i] * sample_len..(partner[i] + 1) * sample_len];
        for (o, &p) in out.iter_mut().zip(other) {
            *o = lam * *o + (1.0 - lam) * p;
        }
    }
    Ok(Mixup {
        labels_a: batch.labels.clone(),
        labels_b: partner.iter().map(|&p| batch.labels[p]).collect(),
        lam,
        partner,
    })
}
