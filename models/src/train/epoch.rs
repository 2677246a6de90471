//! The training half of one epoch: every batch through forward, loss, backward and SGD,
//! feeding the per-step recorders (the gradient-balance diagnostic, the analysis's `M`)
//! when they are on. Evaluation, logging and the checkpoint follow in [`super::run`].
use crate::analysis::EpochAnalyzer;
use crate::config::RunConfig;
use crate::data::seed::derived_rng;
use crate::data::{mixup, Batch, Loader};
use crate::error::{Error, Result};
use crate::loss::{Criterion, GradientBalance, GradientBalanceAccumulator};
use crate::resnet::ResNet;
use crate::train::source::AnySource;
use arbor_engine::ops::loss::Target;
use arbor_engine::optim::Sgd;
use arbor_engine::{tape, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// What an epoch's batches are trained with.
pub(super) struct Training<'a> {
    pub cfg: &'a RunConfig,
    pub device: Device,
    pub criterion: &'a Criterion,
    pub model: &'a mut ResNet,
    pub sgd: &'a mut Sgd,
}

/// One epoch's optional per-step recorders.
pub(super) struct Recorders {
    /// `--diagnostic`: attraction and repulsion on the classifier rows.
    pub balance: Option<GradientBalanceAccumulator>,
    /// `--analyze`, on a recorded epoch: the class-gradient matrix `M`.
    pub analyzer: Option<EpochAnalyzer>,
}

/// Sums over one epoch's training half.
pub(super) struct EpochTrain {
    /// Sum over images of the batch's mean loss.
    pub loss_sum: f64,
    /// Images trained on.
    pub seen: usize,
    /// Seconds spent waiting for the loader: the data path's cost to the step.
    pub data_wait_s: f64,
}

impl Training<'_> {
    /// Trains on every batch of `loader`'s next epoch, showing progress on `bar`.
    pub fn epoch(
        &mut self,
        epoch: usize,
        loader: &mut Loader<AnySource>,
        bar: &ProgressBar,
        rec: &mut Recorders,
    ) -> Result<EpochTrain> {
        let t0 = Instant::now();
        let mut sums = EpochTrain {
            loss_sum: 0.0,
            seen: 0,
            data_wait_s: 0.0,
        };
        let mut batches = loader.epoch().enumerate();
        loop {
            let waited = Instant::now();
            let Some((step, batch)) = batches.next() else {
                break;
            };
            sums.data_wait_s += waited.elapsed().as_secs_f64();
            let (value, images) = self.step(epoch, step, batch?, rec)?;
            sums.loss_sum += value * images as f64;
            sums.seen += images;
            let rate = sums.seen as f64 / t0.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} · {rate:.0} img/s",
                sums.loss_sum / sums.seen as f64
            ));
            bar.inc(1);
        }
        Ok(sums)
    }

    /// One SGD step on `batch` (step `step`, 0-based, of `epoch`): the batch's mean loss
    /// and its number of images. A non-finite loss stops the run.
    fn step(
        &mut self,
        epoch: usize,
        step: usize,
        mut batch: Batch,
        rec: &mut Recorders,
    ) -> Result<(f64, usize)> {
        let (labels, target) = batch_target(self.cfg, epoch, step, &mut batch)?;
        // The batch's one upload; the loss value is its one download.
        let x = Tensor::from_vec(batch.images, batch.shape.to_vec())?.to_device(self.device)?;
        let features = self.model.features(&x)?;
        let logits = self.model.classifier.forward(&features)?;
        let criterion = self.criterion;
        let loss = match rec.balance.as_mut() {
            Some(acc) => {
                let (loss, dlogits) = criterion.loss_with_grad(&logits, &target, epoch)?;
                acc.add(&GradientBalance::compute(
                    &features.detach(),
                    &dlogits,
                    &labels,
                )?)?;
                loss
            }
            None => criterion.loss(&logits, &target, epoch)?,
        };
        if let Some(a) = rec.analyzer.as_mut() {
            a.add_step(&features, &logits, criterion, &target, epoch)?;
        }
        let value = loss.item()?;
        if !value.is_finite() {
            tape::clear();
            return Err(Error::Diverged(format!(
                "loss {value} at epoch {epoch}, step {}",
                step + 1
            )));
        }
        self.sgd.zero_grad();
        loss.backward()?;
        self.sgd.step()?;
        Ok((value, labels.len()))
    }
}

/// The batch's labels (the un-mixed ones, which the diagnostic groups by) and its
/// target: the labels, or with `--mixup` the batch mixed in place and its label pairs.
/// Mixup draws from `(seed, epoch, step)`, so a resumed run mixes the same way.
fn batch_target(
    cfg: &RunConfig,
    epoch: usize,
    step: usize,
    batch: &mut Batch,
) -> Result<(Vec<usize>, Target)> {
    let labels: Vec<usize> = batch.labels.iter().map(|&l| l as usize).collect();
    let target = if cfg.mixup > 0.0 {
        let mut rng = derived_rng(&[cfg.seed, epoch as u64, step as u64, 0x6d69_7875]);
        let m = mixup(batch, cfg.mixup, &mut rng)?;
        let to_usize = |v: &[u32]| v.iter().map(|&l| l as usize).collect();
        Target::Mixup {
            a: to_usize(&m.labels_a),
            b: to_usize(&m.labels_b),
            lam: m.lam as f64,
        }
    } else {
        Target::Hard(labels.clone())
    };
    Ok((labels, target))
}

/// The epoch's progress bar (hidden with `--quiet`).
pub(super) fn progress_bar(quiet: bool, len: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:28}] {pos}/{len} {msg} · ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}
