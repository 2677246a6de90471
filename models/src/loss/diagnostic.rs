//! The gradient-balance diagnostic (the paper's analysis; spec, last section).
//!
//! For a linear classifier `z = h W^T + b`, the mean loss's gradient on class `c`'s weight
//! row is `dL/dW_c = (1/B) sum_b g_bc h_b`, `g_b = dl_b/dz_b` (`p_b - t_b` for ARB and
//! cross-entropy: what [`Tensor::fused_loss_with_grad`] returns). Split by the class
//! `k` of the contributing samples:
//!
//! ```text
//! G_ck = sum_{b : y_b = k} g_bc h_b,     M[c][k] = ||G_ck||_2
//! ```
//!
//! `G_cc` is the **attraction** on `W_c`, `G_ck` (`k != c`) the **repulsion** from class
//! `k`. For each class `k` in the batch, `G_{:,k} = g[rows of k]^T h[rows of k]` is one
//! `[C, d]` GEMM, so a batch costs `O(B C d)` with no loop over class pairs, and nothing is
//! recorded on the tape (the reference kept autograd history and looped over `C^2` pairs).
use arbor_engine::error::{invalid, Error, Result};
use arbor_engine::{no_grad, Tensor};
use serde::{Deserialize, Serialize};

/// `(k, G_{:,k})` for every class `k` present in `labels`, in increasing `k`; `G_{:,k}`
/// is `[C, d]` with row `c` equal to `G_ck`. `features` is `[B, d]`, `dlogits` `[B, C]`.
pub fn class_gradients(
    features: &Tensor,
    dlogits: &Tensor,
    labels: &[usize],
) -> Result<Vec<(usize, Tensor)>> {
    let op = "gradient_balance";
    let (&[b, _], &[b2, c]) = (features.dims(), dlogits.dims()) else {
        return Err(Error::Shape {
            op,
            msg: format!(
                "features {:?} and logit gradients {:?} (want [B, d] and [B, C])",
                features.shape(),
                dlogits.shape()
            ),
        });
    };
    if b != b2 || labels.len() != b {
        return invalid(
            op,
            format!(
                "{b} feature rows, {b2} gradient rows and {} labels",
                labels.len()
            ),
        );
    }
    if let Some(i) = labels.iter().position(|&y| y >= c) {
        return invalid(
            op,
            format!(
                "row {i}: label {} is out of range for {c} classes",
                labels[i]
            ),
        );
    }
    let mut rows_of = vec![Vec::new(); c];
    for (i, &y) in labels.iter().enumerate() {
        rows_of[y].push(i);
    }
    no_grad(|| {
        let (h, g) = (features.detach(), dlogits.detach());
        rows_of
            .iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(k, rows)| {
                let gk = g.index_select(0, rows)?;
                let hk = h.index_select(0, rows)?;
                Ok((k, gk.matmul_t(&hk, true, false)?))
            })
            .collect()
    })
}

/// `M[c][k] = ||G_ck||_2` of one batch (or the mean over several).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradientBalance {
    pub num_classes: usize,
    /// Row-major `C x C`: entry `c * C + k` is `M[c][k]`.
    pub norms: Vec<f64>,
}

/// One class's balance: attraction `M[c][c]`, summed repulsion `sum_{k != c} M[c][k]`,
/// and `repulsion / attraction` (`None` when the class drew no attraction).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassBalance {
    pub class: usize,
    pub attraction: f64,
    pub repulsion: f64,
    pub ratio: Option<f64>,
}

impl GradientBalance {
    /// The diagnostic of one batch (see the module docs for the arguments).
    pub fn compute(features: &Tensor, dlogits: &Tensor, labels: &[usize]) -> Result<Self> {
        let c = dlogits.dims().get(1).copied().unwrap_or(0);
        let mut norms = vec![0.0; c * c];
        for (k, g) in class_gradients(features, dlogits, labels)? {
            let d = g.dims()[1];
            for (cls, row) in g.to_vec_f64()?.chunks(d.max(1)).enumerate() {
                norms[cls * c + k] = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            }
        }
        Ok(GradientBalance {
            num_classes: c,
            norms,
        })
    }

    pub fn norm(&self, c: usize, k: usize) -> f64 {
        self.norms[c * self.num_classes + k]
    }

    pub fn per_class(&self) -> Vec<ClassBalance> {
        (0..self.num_classes)
            .map(|c| {
                let attraction = self.norm(c, c);
                let total: f64 = (0..self.num_classes).map(|k| self.norm(c, k)).sum();
                let repulsion = total - attraction;
                ClassBalance {
                    class: c,
                    attraction,
                    repulsion,
                    ratio: (attraction > 0.0).then(|| repulsion / attraction),
                }
            })
            .collect()
    }
}

/// Averages [`GradientBalance`] over the iterations of an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradientBalanceAccumulator {
    pub num_classes: usize,
    pub sum: Vec<f64>,
    pub iterations: usize,
}

impl GradientBalanceAccumulator {
    pub fn new(num_classes: usize) -> Self {
        GradientBalanceAccumulator {
            num_classes,
            sum: vec![0.0; num_classes * num_classes],
            iterations: 0,
        }
    }

    pub fn add(&mut self, batch: &GradientBalance) -> Result<()> {
        if batch.num_classes != self.num_classes {
            return invalid(
                "gradient_balance",
                format!(
                    "a {}-class batch into a {}-class accumulator",
                    batch.num_classes, self.num_classes
                ),
            );
        }
        for (s, v) in self.sum.iter_mut().zip(&batch.norms) {
            *s += v;
        }
        self.iterations += 1;
        Ok(())
    }

    /// The mean over the iterations added so far (`None` before the first).
    pub fn mean(&self) -> Option<GradientBalance> {
        (self.iterations > 0).then(|| GradientBalance {
            num_classes: self.num_classes,
            norms: self
                .sum
                .iter()
                .map(|s| s / self.iterations as f64)
                .collect(),
        })
    }

    /// Starts a new epoch.
    pub fn reset(&mut self) {
        self.sum.iter_mut().for_each(|s| *s = 0.0);
        self.iterations = 0;
    }
}
