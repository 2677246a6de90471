//! The epoch-mean attraction–repulsion matrix `M` (the paper's analysis, as the reference
//! defines it).
//!
//! For a batch, `g_b = dl_b/dz_b` is sample `b`'s gradient on the logits of the *summed*
//! loss (the fused loss's saved gradient, without the mean's `1/B`), `h_b` its penultimate
//! feature. The class-`j` part of the gradient on classifier row `i` is
//!
//! ```text
//! G_ij = sum_b w_bj g_bi h_b,      M_batch[i][j] = ||G_ij||_2
//! ```
//!
//! with `w_bj` the share of sample `b` that belongs to class `j`: 1 for its label with hard
//! targets (cross-entropy and every other loss); with mixup, `lam` for the first label and
//! `1 - lam` for the partner's (summed when both are the same class), so a mixed image
//! attracts and repels in proportion to how much of each class it holds.
//!
//! `M[i][j]` is the mean of `M_batch[i][j]` over the epoch's iterations in which class `i`
//! is present (holds a sample with `w_bi > 0`); a class never present keeps a zero row and
//! a present-count of 0.
//!
//! Cost: `||G_ij||^2 = v^T K v` with `K` the Gram matrix of the weighted features of class
//! `j` and `v = g[rows of j, i]`, so a batch costs `sum_j n_j^2 (d + C)` (`n_j` the class's
//! rows in the batch) instead of the `B C d` of forming every `G_ij`, and nothing touches
//! the tape.
use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which classes a batch row belongs to, and with what weight (see the module docs).
pub fn memberships(labels_a: &[usize], mix: Option<(&[usize], f64)>) -> Vec<Vec<(usize, f64)>> {
    match mix {
        None => labels_a.iter().map(|&y| vec![(y, 1.0)]).collect(),
        Some((labels_b, lam)) => labels_a
            .iter()
            .zip(labels_b)
            .map(|(&a, &b)| {
                if a == b {
                    vec![(a, 1.0)]
                } else {
                    [(a, lam), (b, 1.0 - lam)]
                        .into_iter()
                        .filter(|&(_, w)| w > 0.0)
                        .collect()
                }
            })
            .collect(),
    }
}

/// `M_batch` of one batch, row-major `C x C`. `features` is `[B, d]`, `dlogits` `[B, C]`,
/// both row-major on the host.
pub fn batch_matrix(
    features: &[f32],
    dlogits: &[f32],
    members: &[Vec<(usize, f64)>],
    num_classes: usize,
) -> Result<Vec<f64>> {
    let (b, c) = (members.len(), num_classes);
    if b == 0 || dlogits.len() != b * c || !features.len().is_multiple_of(b) {
        return Err(Error::Config(format!(
            "analysis: {} feature values, {} logit-gradient values for {b} rows and {c} classes",
            features.len(),
            dlogits.len()
        )));
    }
    let d = features.len() / b;
    // rows_of[j]: (row, weight) of the samples holding some of class j.
    let mut rows_of: Vec<Vec<(usize, f64)>> = vec![Vec::new(); c];
    for (row, m) in members.iter().enumerate() {
        for &(j, w) in m {
            if j >= c {
                return Err(Error::Config(format!(
                    "analysis: row {row} has label {j}, out of range for {c} classes"
                )));
            }
            rows_of[j].push((row, w));
        }
    }
    let present: Vec<usize> = (0..c).filter(|&j| !rows_of[j].is_empty()).collect();
    let columns: Vec<(usize, Vec<f64>)> = present
        .par_iter()
        .map(|&j| {
            let rows = &rows_of[j];
            let n = rows.len();
            // Gram of the weighted features w_b h_b of class j.
            let mut gram = vec![0.0f64; n * n];
            for (p, &(rp, wp)) in rows.iter().enumerate() {
                let hp = &features[rp * d..(rp + 1) * d];
                for (q, &(rq, wq)) in rows.iter().enumerate().skip(p) {
                    let hq = &features[rq * d..(rq + 1) * d];
                    let dot: f64 = hp.iter().zip(hq).map(|(&x, &y)| x as f64 * y as f64).sum();
                    gram[p * n + q] = wp * wq * dot;
                    gram[q * n + p] = gram[p * n + q];
                }
            }
            let mut col = vec![0.0f64; c];
            let mut v = vec![0.0f64; n];
            for (i, out) in col.iter_mut().enumerate() {
                for (vp, &(r, _)) in v.iter_mut().zip(rows) {
                    *vp = dlogits[r * c + i] as f64;
                }
                let mut quad = 0.0;
                for (p, &vp) in v.iter().enumerate() {
                    let row = &gram[p * n..(p + 1) * n];
                    quad += vp * row.iter().zip(&v).map(|(k, x)| k * x).sum::<f64>();
                }
                // v^T K v >= 0 in exact arithmetic; rounding may leave a tiny negative.
                *out = quad.max(0.0).sqrt();
            }
            (j, col)
        })
        .collect();
    let mut m = vec![0.0; c * c];
    for (j, col) in columns {
        for (i, v) in col.into_iter().enumerate() {
            m[i * c + j] = v;
        }
    }
    Ok(m)
}

/// The epoch's running sums of `M_batch`, and per row the iterations that count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixAccumulator {
    pub num_classes: usize,
    pub sum: Vec<f64>,
    /// `present[i]`: iterations in which class `i` was present.
    pub present: Vec<u64>,
    pub iterations: u64,
}

impl MatrixAccumulator {
    pub fn new(num_classes: usize) -> Self {
        MatrixAccumulator {
            num_classes,
            sum: vec![0.0; num_classes * num_classes],
            present: vec![0; num_classes],
            iterations: 0,
        }
    }

    /// Adds one batch (arguments as [`batch_matrix`]).
    pub fn add(
        &mut self,
        features: &[f32],
        dlogits: &[f32],
        members: &[Vec<(usize, f64)>],
    ) -> Result<()> {
        let c = self.num_classes;
        let m = batch_matrix(features, dlogits, members, c)?;
        let mut here = vec![false; c];
        for &(j, w) in members.iter().flatten() {
            here[j] |= w > 0.0;
        }
        for i in (0..c).filter(|&i| here[i]) {
            self.present[i] += 1;
            for (s, v) in self.sum[i * c..(i + 1) * c].iter_mut().zip(&m[i * c..]) {
                *s += v;
            }
        }
        self.iterations += 1;
        Ok(())
    }

    /// `M[i][j]`, the mean over the iterations in which class `i` was present (0 where it
    /// never was).
    pub fn mean(&self) -> Vec<Vec<f64>> {
        let c = self.num_classes;
        (0..c)
            .map(|i| {
                let n = self.present[i].max(1) as f64;
                self.sum[i * c..(i + 1) * c].iter().map(|s| s / n).collect()
            })
            .collect()
    }
}

/// Per class: attraction `M[i][i]`, summed repulsion `sum_{j != i} M[i][j]`, and their
/// ratio `repulsion / attraction` (`None` without attraction).
pub fn balance(m: &[Vec<f64>]) -> Vec<(f64, f64, Option<f64>)> {
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            let attraction = row[i];
            let repulsion: f64 = row.iter().sum::<f64>() - attraction;
            let ratio = (attraction > 0.0).then(|| repulsion / attraction);
            (attraction, repulsion, ratio)
        })
        .collect()
}
