//! The host reference for the fused-loss tests: each loss written straight from its
//! definition (shared/spec/arb-loss.md and the baselines' papers) in f64, with the
//! reference gradient taken by central finite differences of that loss, so the kernels'
//! analytic gradients are checked against nothing derived the same way.
#![allow(dead_code)] // compiled into the test binary that uses it; not every item is used

use crate::common::{Float, Rng};

/// A loss on the host, by name, with its per-class arrays as plain vectors (the kernel
/// sees them only as offsets, margins, a scale, a clamp and coefficients: see
/// `gpu_loss.rs`).
#[derive(Clone, Debug)]
pub enum HostLoss {
    Arb {
        counts: Vec<f64>,
    },
    Bsm {
        counts: Vec<f64>,
        tau: f64,
    },
    Ce {
        smoothing: f64,
    },
    Cb {
        weights: Vec<f64>,
    },
    Focal {
        gamma: f64,
    },
    Ldam {
        margins: Vec<f64>,
        s: f64,
        weights: Option<Vec<f64>>,
    },
}

pub fn logsumexp(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.filter(|x| *x > f64::NEG_INFINITY).collect();
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl HostLoss {
    /// The loss of one row `z` for the single target `y`, straight from the definitions.
    pub fn single(&self, z: &[f64], y: usize) -> f64 {
        let c = z.len();
        match self {
            HostLoss::Arb { counts } => {
                let a: Vec<f64> = (0..c)
                    .map(|j| z[j].clamp(-30.0, 30.0) + counts[j].ln())
                    .collect();
                logsumexp(a.iter().cloned()) - a[y]
            }
            HostLoss::Bsm { counts, tau } => {
                let a: Vec<f64> = (0..c).map(|j| z[j] + tau * counts[j].ln()).collect();
                logsumexp(a.iter().cloned()) - a[y]
            }
            HostLoss::Ce { smoothing } => {
                let lse = logsumexp(z.iter().cloned());
                (0..c)
                    .map(|j| {
                        let t = if j == y { 1.0 - smoothing } else { 0.0 } + smoothing / c as f64;
                        -t * (z[j] - lse)
                    })
                    .sum()
            }
            HostLoss::Cb { weights } => weights[y] * (logsumexp(z.iter().cloned()) - z[y]),
            HostLoss::Focal { gamma } => {
                let log_p = z[y] - logsumexp(z.iter().cloned());
                -(1.0 - log_p.exp()).powf(*gamma) * log_p
            }
            HostLoss::Ldam {
                margins,
                s,
                weights,
            } => {
                let a: Vec<f64> = (0..c)
                    .map(|j| s * if j == y { z[j] - margins[j] } else { z[j] })
                    .collect();
                weights.as_ref().map_or(1.0, |w| w[y]) * (logsumexp(a.iter().cloned()) - a[y])
            }
        }
    }

    /// The row's loss under hard or mixup targets.
    pub fn row(&self, z: &[f64], a: usize, mix: Option<(usize, f64)>) -> f64 {
        match mix {
            None => self.single(z, a),
            Some((b, lam)) => lam * self.single(z, a) + (1.0 - lam) * self.single(z, b),
        }
    }

    /// Largest logit magnitude after the loss's own scaling: the size of the terms whose
    /// difference is the loss, which sets the absolute rounding floor.
    pub fn magnitude(&self, z: &[f64]) -> f64 {
        let zmax = z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        match self {
            HostLoss::Arb { .. } => zmax.min(30.0) + 10.0,
            HostLoss::Bsm { tau, .. } => zmax + tau * 10.0,
            HostLoss::Ldam { s, .. } => s * (zmax + 1.0),
            _ => zmax + 1.0,
        }
    }
}

/// Data for one case: logits (already rounded to the kernel's type), labels, counts.
pub struct Case {
    pub rows: usize,
    pub classes: usize,
    pub z: Vec<f64>,
    pub a: Vec<i32>,
    pub b: Option<(Vec<i32>, f64)>,
    pub scale: f64,
}

impl Case {
    pub fn new<T: Float>(
        rows: usize,
        classes: usize,
        z_range: f64,
        mixup: bool,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let z = rng
            .vec(rows * classes, -z_range, z_range)
            .into_iter()
            .map(|v| T::from_f64(v).to_f64())
            .collect();
        let a: Vec<i32> = (0..rows).map(|_| rng.below(classes) as i32).collect();
        // Mixup pairs each sample with another of the batch: b is a rotation of a.
        let b = mixup.then(|| ((0..rows).map(|i| a[(i + 1) % rows]).collect(), 0.3));
        Self {
            rows,
            classes,
            z,
            a,
            b,
            scale: 1.0 / rows as f64,
        }
    }

    /// Per-class counts of the batch's labels (ARB's `--counts batch`).
    pub fn batch_counts(&self) -> Vec<f64> {
        let mut counts = vec![0.0; self.classes];
        for &y in &self.a {
            counts[y as usize] += 1.0;
        }
        counts
    }

    pub fn mix(&self, i: usize) -> Option<(usize, f64)> {
        self.b.as_ref().map(|(b, lam)| (b[i] as usize, *lam))
    }

    /// Reference per-row losses (scaled), gradient by central differences, and the
    /// absolute tolerance floor of each row.
    pub fn reference(&self, loss: &HostLoss) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (c, h) = (self.classes, 1e-6);
        let (mut losses, mut grad, mut floors) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..self.rows {
            let mut z = self.z[i * c..(i + 1) * c].to_vec();
            let a = self.a[i] as usize;
            losses.push(self.scale * loss.row(&z, a, self.mix(i)));
            floors.push(1e-6 * self.scale * loss.magnitude(&z));
            for j in 0..c {
                let zj = z[j];
                z[j] = zj + h;
                let up = loss.row(&z, a, self.mix(i));
                z[j] = zj - h;
                let down = loss.row(&z, a, self.mix(i));
                z[j] = zj;
                grad.push(self.scale * (up - down) / (2.0 * h));
            }
        }
        (losses, grad, floors)
    }
}

/// Long-tailed global counts: n_j = 5000 * 0.01^(j / (C-1)), at least 1.
pub fn long_tail(classes: usize) -> Vec<f64> {
    (0..classes)
        .map(|j| {
            (5000.0 * 0.01f64.powf(j as f64 / (classes - 1) as f64))
                .round()
                .max(1.0)
        })
        .collect()
}

/// LDAM margins m_j proportional to n_j^(-1/4), the largest 0.5.
pub fn ldam_margins(counts: &[f64]) -> Vec<f64> {
    let raw: Vec<f64> = counts.iter().map(|n| n.powf(-0.25)).collect();
    let max = raw.iter().cloned().fold(0.0, f64::max);
    raw.iter().map(|m| 0.5 * m / max).collect()
}

pub fn class_balanced_weights(counts: &[f64], beta: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|n| (1.0 - beta) / (1.0 - beta.powf(*n)))
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| w * counts.len() as f64 / sum).collect()
}

// The reference checked against closed forms, so the GPU tests compare against the right
// thing (host-only).

/// Host-only: the reference's stable ARB form equals the paper's direct form
/// L = -log(exp(z~_y) / sum_j (n_j / n_y) exp(z~_j)) for |z| <= 30.
#[test]
fn arb_reference_matches_the_direct_exp_form() {
    let mut rng = Rng::new(77);
    let classes = 100;
    let counts: Vec<f64> = (0..classes)
        .map(|j| {
            if j % 7 == 3 {
                0.0
            } else {
                (1 + rng.below(500)) as f64
            }
        })
        .collect();
    let loss = HostLoss::Arb {
        counts: counts.clone(),
    };
    for _ in 0..50 {
        let z = rng.vec(classes, -30.0, 30.0);
        let y = (0..classes)
            .find(|&j| counts[j] > 0.0 && rng.unit() < 0.1)
            .unwrap_or(0);
        let denominator: f64 = (0..classes)
            .map(|j| counts[j] / counts[y] * z[j].exp())
            .sum();
        let direct = -(z[y].exp() / denominator).ln();
        let stable = loss.single(&z, y);
        assert!(
            (direct - stable).abs() <= 1e-12 * direct.abs().max(1.0),
            "{direct} vs {stable}"
        );
    }
}

/// Host-only: the finite-difference reference gradient equals the spec's closed form
/// dL/dz = (p - onehot) * mask / B, so the GPU tests compare against the right thing.
#[test]
fn reference_gradient_matches_the_spec_formula() {
    let case = Case::new::<f32>(5, 12, 40.0, false, 3);
    let counts = case.batch_counts();
    let (_, grad, _) = case.reference(&HostLoss::Arb {
        counts: counts.clone(),
    });
    for i in 0..case.rows {
        let z = &case.z[i * 12..(i + 1) * 12];
        let a: Vec<f64> = (0..12)
            .map(|j| {
                if counts[j] > 0.0 {
                    z[j].clamp(-30.0, 30.0) + counts[j].ln()
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let lse = logsumexp(a.iter().cloned());
        for j in 0..12 {
            let p = (a[j] - lse).exp();
            let onehot = if j == case.a[i] as usize { 1.0 } else { 0.0 };
            let mask = if z[j].abs() <= 30.0 { 1.0 } else { 0.0 };
            let want = (p - onehot) * mask / case.rows as f64;
            assert!(
                (grad[i * 12 + j] - want).abs() < 1e-8,
                "[{i},{j}] {} vs {want}",
                grad[i * 12 + j]
            );
        }
    }
}
