//! Neural-collapse metrics (Papyan, Han & Donoho 2020) of penultimate features, streamed:
//! per class a count and a feature sum, and one `d x d` second moment for all classes, so
//! memory is `O(C d + d^2)` whatever the number of images.
//!
//! Definitions (classes with no image are left out of every metric):
//! - `mu_c` the class means, `mu_G` the *mean of the class means* (not the image-weighted
//!   mean: under imbalance that would be pulled toward the head classes, and a simplex ETF
//!   of means would not be centred), `M` the `C x d` matrix of centred means `mu_c - mu_G`.
//! - `Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T = (S - sum_c n_c mu_c mu_c^T)/N`
//!   with `S = sum_i h_i h_i^T`; `Sigma_B = M^T M / C` (rank at most `C - 1`).
//! - NC1 `tr(Sigma_W Sigma_B^+) / C`; NC2 the coefficient of variation (std / mean) of the
//!   centred mean norms and of the classifier-row norms, the std of the pairwise cosines of
//!   centred means and the mean of `|cos + 1/(C-1)|`; NC3 `||W/||W||_F - M/||M||_F||_F^2`;
//!   NC4 the share of images whose classifier prediction differs from the nearest class
//!   mean (measured by [`NearestMean`] in a second pass, once the means are known).
use crate::error::{Error, Result};
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

/// Eigenvalues below this share of the largest are treated as zero in `Sigma_B^+`.
const PINV_RTOL: f64 = 1e-10;

/// Streamed first and second moments of features, per class.
#[derive(Clone, Debug)]
pub struct FeatureStats {
    pub counts: Vec<u64>,
    /// `C x d` per-class feature sums.
    pub sums: DMatrix<f64>,
    /// `d x d` sum of `h h^T` over all images.
    pub second: DMatrix<f64>,
}

/// The metrics; `None` where a metric is undefined (fewer than two classes with images,
/// or features with no spread between classes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollapseMetrics {
    pub nc1: Option<f64>,
    pub nc2_feature_norm_cv: Option<f64>,
    pub nc2_classifier_norm_cv: Option<f64>,
    pub nc2_cos_std: Option<f64>,
    pub nc2_cos_etf_gap: Option<f64>,
    pub nc3: Option<f64>,
    pub nc4: Option<f64>,
}

fn host_rows(features: &[f32], rows: usize, what: &str) -> Result<(usize, DMatrix<f64>)> {
    if rows == 0 || !features.len().is_multiple_of(rows) {
        return Err(Error::Config(format!(
            "analysis: {} {what} values for {rows} rows",
            features.len()
        )));
    }
    let d = features.len() / rows;
    let v: Vec<f64> = features.iter().map(|&x| x as f64).collect();
    Ok((d, DMatrix::from_row_slice(rows, d, &v)))
}

impl FeatureStats {
    pub fn new(num_classes: usize, dim: usize) -> Self {
        FeatureStats {
            counts: vec![0; num_classes],
            sums: DMatrix::zeros(num_classes, dim),
            second: DMatrix::zeros(dim, dim),
        }
    }

    /// Adds a batch: `features` `[B, d]` row-major, one label per row.
    pub fn add(&mut self, features: &[f32], labels: &[usize]) -> Result<()> {
        let (d, h) = host_rows(features, labels.len(), "feature")?;
        if d != self.sums.ncols() {
            return Err(Error::Config(format!(
                "analysis: {d}-d features into {}-d statistics",
                self.sums.ncols()
            )));
        }
        // S += H^T H: one GEMM per batch. An explicit transpose first: nalgebra's `gemm`
        // hands large products to matrixmultiply, `gemm_tr` does not (4x slower at d = 2048).
        self.second.gemm(1.0, &h.transpose(), &h, 1.0);
        for (r, &y) in labels.iter().enumerate() {
            if y >= self.counts.len() {
                return Err(Error::Config(format!(
                    "analysis: label {y} out of range for {} classes",
                    self.counts.len()
                )));
            }
            self.counts[y] += 1;
            let mut row = self.sums.row_mut(y);
            row += h.row(r);
        }
        Ok(())
    }

    /// Classes with at least one image.
    pub fn present(&self) -> Vec<usize> {
        (0..self.counts.len())
            .filter(|&c| self.counts[c] > 0)
            .collect()
    }

    /// `C x d` class means (zero rows for classes without images).
    pub fn means(&self) -> DMatrix<f64> {
        let mut m = self.sums.clone();
        for (c, &n) in self.counts.iter().enumerate() {
            if n > 0 {
                m.row_mut(c).scale_mut(1.0 / n as f64);
            }
        }
        m
    }

    /// The mean of the present classes' means.
    pub fn centre(&self) -> Vec<f64> {
        let (means, present) = (self.means(), self.present());
        (0..means.ncols())
            .map(|k| {
                present.iter().map(|&c| means[(c, k)]).sum::<f64>() / present.len().max(1) as f64
            })
            .collect()
    }

    /// `Sigma_W` (see the module docs).
    pub fn within_covariance(&self) -> DMatrix<f64> {
        let n: u64 = self.counts.iter().sum();
        // sum_c n_c mu_c mu_c^T = A^T A with rows sqrt(n_c) mu_c: one GEMM, not C rank-1 updates.
        let mut a = self.means();
        for (c, &nc) in self.counts.iter().enumerate() {
            a.row_mut(c).scale_mut((nc as f64).sqrt());
        }
        let mut sw = self.second.clone();
        sw.gemm(-1.0, &a.transpose(), &a, 1.0);
        sw / n.max(1) as f64
    }

    /// The present classes' centred means, `C' x d`.
    pub fn centred_means(&self) -> DMatrix<f64> {
        let (means, present, centre) = (self.means(), self.present(), self.centre());
        DMatrix::from_fn(present.len(), means.ncols(), |r, k| {
            means[(present[r], k)] - centre[k]
        })
    }

    /// NC1–NC3 with `classifier` the `C x d` weight (all classes); NC4 as measured.
    pub fn metrics(&self, classifier: &DMatrix<f64>, nc4: Option<f64>) -> CollapseMetrics {
        let present = self.present();
        let m = self.centred_means();
        let w = DMatrix::from_fn(present.len(), classifier.ncols(), |r, k| {
            classifier[(present[r], k)]
        });
        let c = present.len();
        if c < 2 {
            return CollapseMetrics {
                nc1: None,
                nc2_feature_norm_cv: None,
                nc2_classifier_norm_cv: None,
                nc2_cos_std: None,
                nc2_cos_etf_gap: None,
                nc3: None,
                nc4,
            };
        }
        // All pairwise dot products in one GEMM (rows of a column-major matrix are strided).
        let gram = &m * m.transpose();
        let norms: Vec<f64> = (0..c).map(|a| gram[(a, a)].max(0.0).sqrt()).collect();
        let w_norms: Vec<f64> = w.row_iter().map(|r| r.norm()).collect();
        let mut cosines = Vec::with_capacity(c * (c - 1) / 2);
        for a in 0..c {
            for b in a + 1..c {
                if norms[a] > 0.0 && norms[b] > 0.0 {
                    cosines.push(gram[(a, b)] / (norms[a] * norms[b]));
                }
            }
        }
        let etf = -1.0 / (c as f64 - 1.0);
        let (mf, wf) = (m.norm(), w.norm());
        CollapseMetrics {
            nc1: nc1(&self.within_covariance(), &m),
            nc2_feature_norm_cv: coefficient_of_variation(&norms),
            nc2_classifier_norm_cv: coefficient_of_variation(&w_norms),
            nc2_cos_std: std_dev(&cosines),
            nc2_cos_etf_gap: (!cosines.is_empty()).then(|| {
                cosines.iter().map(|x| (x - etf).abs()).sum::<f64>() / cosines.len() as f64
            }),
            nc3: (mf > 0.0 && wf > 0.0).then(|| (w / wf - m / mf).norm_squared()),
            nc4,
        }
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Population standard deviation.
fn std_dev(v: &[f64]) -> Option<f64> {
    let mu = mean(v)?;
    Some((v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / v.len() as f64).sqrt())
}

fn coefficient_of_variation(v: &[f64]) -> Option<f64> {
    let mu = mean(v)?;
    (mu > 0.0).then(|| std_dev(v).unwrap_or(0.0) / mu)
}

/// `tr(Sigma_W Sigma_B^+) / C` with `Sigma_B = M^T M / C`, from the eigen-decomposition
/// of the smaller of `M^T M` (`d x d`) and `M M^T` (`C x C`): with `M M^T = U L U^T`,
/// `tr(Sigma_W Sigma_B^+) = C sum_k u_k^T (M Sigma_W M^T) u_k / l_k^2`, so C = 1000 with
/// 2048-d features decomposes a 1000 x 1000 matrix, not a 2048 x 2048 one.
pub fn nc1(sw: &DMatrix<f64>, m: &DMatrix<f64>) -> Option<f64> {
    let (c, d) = m.shape();
    let cf = c as f64;
    let trace = if d <= c {
        let q = sw.clone_owned();
        over_spectrum(m.transpose() * m / cf, |v, l| {
            (v.transpose() * &q * v)[(0, 0)] / l
        })?
    } else {
        let q = m * sw * m.transpose();
        over_spectrum(m * m.transpose(), |u, l| {
            cf * (u.transpose() * &q * u)[(0, 0)] / (l * l)
        })?
    };
    Some(trace / cf)
}

/// `sum_k term(v_k, l_k)` over the eigenpairs of the symmetric `g` whose eigenvalue is
/// above the pseudo-inverse's cut-off (`PINV_RTOL` of the largest); `None` when `g` is 0.
fn over_spectrum(
    g: DMatrix<f64>,
    term: impl Fn(nalgebra::DVectorView<f64>, f64) -> f64,
) -> Option<f64> {
    let eig = SymmetricEigen::new(g);
    let top = eig.eigenvalues.iter().cloned().fold(0.0, f64::max);
    if top <= 0.0 {
        return None;
    }
    Some(
        eig.eigenvalues
            .iter()
            .enumerate()
            .filter(|(_, &l)| l > top * PINV_RTOL)
            .map(|(k, &l)| term(eig.eigenvectors.column(k), l))
            .sum(),
    )
}

/// NC4's second pass: counts images whose classifier prediction differs from the nearest
/// class mean (over the classes with images).
pub struct NearestMean {
    /// `d x C'` present classes' means, and their squared norms.
    means_t: DMatrix<f64>,
    sq: Vec<f64>,
    present: Vec<usize>,
    pub disagree: u64,
    pub total: u64,
}

impl NearestMean {
    pub fn new(stats: &FeatureStats) -> Self {
        let (means, present) = (stats.means(), stats.present());
        let sel = DMatrix::from_fn(present.len(), means.ncols(), |r, k| means[(present[r], k)]);
        NearestMean {
            sq: sel.row_iter().map(|r| r.norm_squared()).collect(),
            means_t: sel.transpose(),
            present,
            disagree: 0,
            total: 0,
        }
    }

    /// `features` `[B, d]` and `logits` `[B, C]`, row-major.
    pub fn add(&mut self, features: &[f32], logits: &[f32], rows: usize) -> Result<()> {
        let (_, h) = host_rows(features, rows, "feature")?;
        let (c, _) = host_rows(logits, rows, "logit")?;
        if h.ncols() != self.means_t.nrows() {
            return Err(Error::Config(
                "analysis: feature width changed between passes".into(),
            ));
        }
        // argmin_c ||h - mu_c||^2 = argmin_c (||mu_c||^2 - 2 h.mu_c).
        let dots = &h * &self.means_t;
        for r in 0..rows {
            let nearest = (0..self.present.len())
                .map(|k| (self.sq[k] - 2.0 * dots[(r, k)], self.present[k]))
                .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a })
                .1;
            let z = &logits[r * c..(r + 1) * c];
            let predicted = (0..c).fold(0, |best, k| if z[k] > z[best] { k } else { best });
            self.disagree += (predicted != nearest) as u64;
            self.total += 1;
        }
        Ok(())
    }

    pub fn share(&self) -> Option<f64> {
        (self.total > 0).then(|| self.disagree as f64 / self.total as f64)
    }
}
