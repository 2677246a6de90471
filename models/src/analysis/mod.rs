//! `--analyze`: the paper's geometry, per recorded epoch ([`records_epoch`]), into
//! `analysis.jsonl`.
//!
//! Each record holds the epoch-mean attraction–repulsion matrix `M` ([`matrix`]), per class
//! its attraction, summed repulsion and their ratio, the neural-collapse metrics of the
//! training set's penultimate features ([`collapse`]), and per class the training count,
//! the feature-mean norm and the classifier row's norm and bias.
//!
//! `M` is accumulated during the epoch's training steps from the features and logit
//! gradients the step computes anyway (epochs that are not evaluated skip it). The
//! collapse metrics come from no-grad passes over the training set in evaluation mode and
//! without augmentation, after the epoch: one streams the class means and second moments
//! (features are never kept), a second counts NC4's disagreements against the final means.
//!
//! Nothing accumulates across epochs, so a resumed run only has to cut `analysis.jsonl`
//! back to its checkpoint's epoch ([`on_resume`]) to continue exactly.
pub mod collapse;
pub mod matrix;

use crate::config::RunConfig;
use crate::data::imagefolder::ImageTransform;
use crate::data::{CifarSamples, CifarTransform, Loader, LoaderConfig};
use crate::error::{Error, Result};
use crate::loss::Criterion;
use crate::resnet::ResNet;
use crate::train::jsonl;
use crate::train::source::AnySource;
use arbor_engine::ops::loss::Target;
use arbor_engine::{no_grad, Tensor};
use collapse::{CollapseMetrics, FeatureStats, NearestMean};
use matrix::{memberships, MatrixAccumulator};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Whether `--analyze` records `epoch`: an evaluated epoch that is a multiple of
/// `analyze_every`, and the last epoch.
pub fn records_epoch(cfg: &RunConfig, epoch: usize) -> bool {
    let evaluated = epoch.is_multiple_of(cfg.eval_every) || epoch == cfg.epochs;
    cfg.analyze && evaluated && (epoch.is_multiple_of(cfg.analyze_every) || epoch == cfg.epochs)
}

/// The per-epoch analysis file of a run folder.
pub const ANALYSIS_FILE: &str = "analysis.jsonl";

/// One class of an [`AnalysisRecord`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAnalysis {
    pub class: usize,
    pub train_count: usize,
    /// `M[i][i]`.
    pub attraction: f64,
    /// `sum_{j != i} M[i][j]`.
    pub repulsion: f64,
    /// `repulsion / attraction`; `None` when the class drew no attraction.
    pub ratio: Option<f64>,
    /// Iterations of the epoch in which the class was present (what row `i` averages over).
    pub present_iterations: u64,
    /// `||mu_c - mu_G||` (centred, as NC2 uses it) and `||mu_c||`.
    pub feature_mean_norm: f64,
    pub feature_mean_norm_raw: f64,
    pub classifier_norm: f64,
    pub bias: f64,
}

/// One line of `analysis.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRecord {
    pub epoch: usize,
    pub num_classes: usize,
    pub feature_dim: usize,
    /// Training iterations of the epoch.
    pub iterations: u64,
    /// `M[i][j]`: row `i` the classifier row, column `j` the class of the samples.
    pub matrix: Vec<Vec<f64>>,
    pub classes: Vec<ClassAnalysis>,
    pub collapse: CollapseMetrics,
    /// Seconds spent on `M` during the epoch's steps, and on the collapse passes.
    pub matrix_s: f64,
    pub collapse_s: f64,
}

/// Collects `M` over one epoch's training steps.
pub struct EpochAnalyzer {
    acc: MatrixAccumulator,
    seconds: f64,
}

impl EpochAnalyzer {
    pub fn new(num_classes: usize) -> Self {
        EpochAnalyzer {
            acc: MatrixAccumulator::new(num_classes),
            seconds: 0.0,
        }
    }

    /// One step: `features` `[B, d]` and `logits` `[B, C]` of the step, and its loss. The
    /// logit gradient is recomputed off the tape, so the step's own backward (and hence
    /// the training) is exactly that of a run without `--analyze`.
    pub fn add_step(
        &mut self,
        features: &Tensor,
        logits: &Tensor,
        criterion: &Criterion,
        target: &Target,
        epoch: usize,
    ) -> Result<()> {
        let t0 = Instant::now();
        let dlogits = no_grad(|| criterion.loss_with_grad(&logits.detach(), target, epoch))?.1;
        let members = match target {
            Target::Hard(y) => memberships(y, None),
            Target::Mixup { a, b, lam } => memberships(a, Some((b, *lam))),
            Target::Soft(_) => {
                return Err(Error::Config(
                    "--analyze: soft targets have no class split".into(),
                ))
            }
        };
        let h = features.detach().to_vec::<f32>()?;
        let g = dlogits.to_vec::<f32>()?;
        self.acc.add(&h, &g, &members)?;
        self.seconds += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// The accumulated sums so far (for tests and for checking against the diagnostic).
    pub fn accumulator(&self) -> &MatrixAccumulator {
        &self.acc
    }

    /// Runs the collapse passes over `train` (un-augmented) and builds the epoch's record.
    pub fn finish(
        self,
        model: &mut ResNet,
        train: &Arc<AnySource>,
        class_counts: &[usize],
        batch: usize,
        epoch: usize,
    ) -> Result<AnalysisRecord> {
        let t0 = Instant::now();
        let (weight, bias) = classifier(model)?;
        let stats = feature_statistics(model, train, batch)?;
        let mut nearest = NearestMean::new(&stats);
        for_each_batch(model, train, batch, |h, z, y| nearest.add(h, z, y.len()))?;
        let collapse = stats.metrics(&weight, nearest.share());
        let m = self.acc.mean();
        let balance = matrix::balance(&m);
        let (means, centre) = (stats.means(), stats.centre());
        let classes = (0..m.len())
            .map(|c| {
                let (attraction, repulsion, ratio) = balance[c];
                let mu = means.row(c);
                let centred: f64 = mu
                    .iter()
                    .zip(&centre)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt();
                ClassAnalysis {
                    class: c,
                    train_count: class_counts.get(c).copied().unwrap_or(0),
                    attraction,
                    repulsion,
                    ratio,
                    present_iterations: self.acc.present[c],
                    feature_mean_norm: if stats.counts[c] > 0 { centred } else { 0.0 },
                    feature_mean_norm_raw: mu.norm(),
                    classifier_norm: weight.row(c).norm(),
                    bias: bias[c],
                }
            })
            .collect();
        Ok(AnalysisRecord {
            epoch,
            num_classes: m.len(),
            feature_dim: weight.ncols(),
            iterations: self.acc.iterations,
            matrix: m,
            classes,
            collapse,
            matrix_s: self.seconds,
            collapse_s: t0.elapsed().as_secs_f64(),
        })
    }
}

/// The classifier's `C x d` weight and its bias, on the host.
fn classifier(model: &ResNet) -> Result<(DMatrix<f64>, Vec<f64>)> {
    let w = &model.classifier.weight;
    let &[c, d] = w.dims() else {
        return Err(Error::Config(format!(
            "analysis: classifier weight {:?}",
            w.dims()
        )));
    };
    let v: Vec<f64> = w.to_vec::<f32>()?.into_iter().map(|x| x as f64).collect();
    let bias = model.classifier.bias.to_vec::<f32>()?;
    Ok((
        DMatrix::from_row_slice(c, d, &v),
        bias.into_iter().map(|x| x as f64).collect(),
    ))
}

/// The first collapse pass: class counts, sums and the second moment of the features.
pub fn feature_statistics(
    model: &mut ResNet,
    train: &Arc<AnySource>,
    batch: usize,
) -> Result<FeatureStats> {
    let (c, d) = match model.classifier.weight.dims() {
        &[c, d] => (c, d),
        dims => {
            return Err(Error::Config(format!(
                "analysis: classifier weight {dims:?}"
            )))
        }
    };
    let mut stats = FeatureStats::new(c, d);
    for_each_batch(model, train, batch, |h, _, y| stats.add(h, y))?;
    Ok(stats)
}

/// Feeds every training image once, in order, in evaluation mode and without the tape, as
/// `(features, logits, labels)` on the host.
fn for_each_batch(
    model: &mut ResNet,
    train: &Arc<AnySource>,
    batch: usize,
    mut f: impl FnMut(&[f32], &[f32], &[usize]) -> Result<()>,
) -> Result<()> {
    model.set_training(false);
    let mut cfg = LoaderConfig::eval(batch.max(256));
    cfg.prefetch = 1;
    let outcome = (|| {
        let mut loader = Loader::new(train.clone(), cfg)?;
        no_grad(|| -> Result<()> {
            for b in loader.epoch() {
                let b = b?;
                let x = Tensor::from_vec(b.images, b.shape.to_vec())?.to_device(model.device())?;
                let h = model.features(&x)?;
                let z = model.classifier.forward(&h)?;
                let y: Vec<usize> = b.labels.iter().map(|&l| l as usize).collect();
                f(&h.to_vec::<f32>()?, &z.to_vec::<f32>()?, &y)?;
            }
            Ok(())
        })
    })();
    model.set_training(true);
    outcome
}

/// The training set as the test set is seen: same images, no augmentation.
pub fn unaugmented(train: &AnySource) -> Result<Arc<AnySource>> {
    Ok(Arc::new(match train {
        AnySource::Cifar(s) => AnySource::Cifar(CifarSamples::new(
            Arc::new(s.dataset().clone()),
            CifarTransform::Test,
        )?),
        AnySource::Folder(s) => AnySource::Folder(s.with_transform(ImageTransform::Test)),
    }))
}

/// Appends one record to `OUT/analysis.jsonl`.
pub fn write(out: &Path, record: &AnalysisRecord) -> Result<()> {
    jsonl::append(&out.join(ANALYSIS_FILE), record)
}

/// On resume: drops the records after the checkpoint's epoch (a kill between the append and
/// the checkpoint save would otherwise repeat that epoch).
pub fn on_resume(out: &Path, checkpoint_epoch: usize) -> Result<()> {
    jsonl::truncate_to_epoch(&out.join(ANALYSIS_FILE), checkpoint_epoch)
}

/// Reads `analysis.jsonl`, naming the file and line of a bad record.
pub fn read(path: &Path) -> Result<Vec<AnalysisRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::file(
                    path,
                    format!("line {}: not an analysis record ({e})", i + 1),
                )
            })
        })
        .collect()
}
