//! The trainer: the protocol's SGD and schedule, evaluation every N epochs, a JSON line
//! per epoch, a checkpoint per epoch, exact resumption, and `results.json`.
//!
//! Reproducibility: the weights come from `seed`, the loader's order and augmentation from
//! `(seed, epoch, index)`, mixup from `(seed, epoch, step)`, and every CPU kernel is
//! deterministic for a given thread count, so the same seed and threads give the same
//! numbers, and a resumed run continues exactly where it stopped.
pub mod checkpoint;
mod epoch;
pub mod hooks;
pub mod jsonl;
pub mod report;
pub mod run_dir;
pub mod source;

use crate::config::{CountsMode, RunConfig};
use crate::data::{Loader, LoaderConfig, SampleSource};
use crate::error::{write_atomic, Error, Result};
use crate::loss::{CountMode, Criterion, GradientBalanceAccumulator, LossKind};
use crate::metrics::{Accumulator, ClassGroups, Evaluation};
use crate::resnet::ResNet;
use arbor_engine::ops::loss::Reduction;
use arbor_engine::optim::{LrSchedule, Sgd};
use arbor_engine::{no_grad, DType, Device, Tensor};
use checkpoint::Checkpoint;
use epoch::{progress_bar, Recorders, Training};
use report::{balance_rows, epoch_line, summarise, EpochLog, EvalSummary, RunResult};
use source::{prepare, AnySource, Prepared};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// How a run treats its output folder, and how chatty it is.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from `OUT/checkpoint.bin`.
    pub resume: bool,
    /// Replace an existing output folder.
    pub force: bool,
    /// Stop after this epoch (the checkpoint allows `--resume` later).
    pub stop_after: Option<usize>,
    /// No progress bars.
    pub quiet: bool,
}

/// File names inside a run folder.
pub const CONFIG_FILE: &str = "config.json";
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";
pub const LOG_FILE: &str = "log.jsonl";
pub const RESULTS_FILE: &str = "results.json";

/// The loss of `cfg`, with ARB's count mode and LDAM-DRW's re-weighting epoch set from it.
pub fn criterion_for(cfg: &RunConfig, class_counts: &[usize]) -> Result<Criterion> {
    let mut kind: LossKind = cfg
        .loss
        .parse()
        .map_err(|e: arbor_engine::Error| Error::Config(format!("--loss: {e}")))?;
    match &mut kind {
        LossKind::Arb { counts, .. } => {
            *counts = match cfg.counts {
                CountsMode::Batch => CountMode::Batch,
                CountsMode::Global => CountMode::Global,
            }
        }
        LossKind::Ldam { drw: Some(drw), .. } => {
            // The reference re-weights from epoch 160 of 200: keep that proportion.
            drw.after_epoch = (cfg.epochs * 4).div_ceil(5);
        }
        _ => {}
    }
    let counts: Vec<f64> = class_counts.iter().map(|&c| c as f64).collect();
    Ok(Criterion::new(kind, Reduction::Mean, &counts)?)
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All epochs done; the results are also in `OUT/results.json`.
    Finished(Box<RunResult>),
    /// Stopped after this epoch as asked (`stop_after`); `resume` continues it.
    Stopped { epoch: usize },
}

/// Trains `cfg` into `out`.
pub fn run(cfg: &RunConfig, out: &Path, opts: &RunOptions) -> Result<Outcome> {
    cfg.validate().map_err(Error::Config)?;
    run_dir::check_not_in_use(out)?;
    // Everything that can fail on bad input is checked before the output folder is touched.
    let device = training_device(cfg)?;
    let started = Instant::now();
    let data = prepare(cfg)?;
    let criterion = criterion_for(cfg, &data.class_counts)?;
    if cfg.batch > data.train.len() {
        return Err(Error::Config(format!(
            "--batch {} is larger than the training set ({} images)",
            cfg.batch,
            data.train.len()
        )));
    }
    // Built (and --init-from read and checked) before the output folder is touched.
    let (mut model, init_notes) = hooks::build_model(cfg, data.num_classes, opts.resume)?;
    // Held until the run returns; the OS releases it if the process dies.
    let run_dir::Prepared {
        lock: _lock,
        resume_from,
    } = run_dir::prepare(cfg, out, opts)?;
    if resume_from.is_none() {
        data.save_indices(out)?;
    }
    for note in &init_notes {
        eprintln!("init: {note}");
    }
    // Weights are drawn on the host (the same numbers on every device), then moved once.
    model.to_device(device)?;
    let mut sgd = Sgd::new(model.trainable_parameters(), cfg.lr, cfg.momentum, cfg.wd)?;
    let schedule = LrSchedule::by_name(&cfg.schedule, cfg.lr, cfg.epochs)?;

    let mut state = RunState {
        first_epoch: 1,
        ..RunState::default()
    };
    let mut loader_state = Default::default();
    if let Some(ck) = &resume_from {
        let path = out.join(CHECKPOINT_FILE);
        let (params, buffers) = model.named();
        ck.restore(&[params, buffers].concat(), &path)?;
        sgd.load_state(&ck.sgd)?;
        loader_state = ck.loader;
        state = RunState {
            first_epoch: ck.epoch + 1,
            history: ck.history.clone(),
            wall_s: ck.wall_s,
            train_images: ck.train_images,
            train_s: ck.train_s,
        };
    }
    let loader_cfg = LoaderConfig::train(cfg.batch, cfg.seed);
    let mut loader = Loader::resume(data.train.clone(), loader_cfg, loader_state)?;
    let wall_before = state.wall_s;
    let unaugmented_train = match cfg.analyze {
        true => Some(crate::analysis::unaugmented(&data.train)?),
        false => None,
    };

    let last = opts.stop_after.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    for epoch in state.first_epoch..=last {
        sgd.lr = schedule.lr_at(epoch);
        model.set_training(true);
        let bar = progress_bar(
            opts.quiet,
            loader.batches_per_epoch() as u64,
            epoch,
            cfg.epochs,
        );
        let t0 = Instant::now();
        let mut recorders = Recorders {
            balance: cfg
                .diagnostic
                .then(|| GradientBalanceAccumulator::new(data.num_classes)),
            // Only the epochs that are recorded pay for `M` and the collapse passes.
            analyzer: crate::analysis::records_epoch(cfg, epoch)
                .then(|| crate::analysis::EpochAnalyzer::new(data.num_classes)),
        };
        let mut training = Training {
            cfg,
            device,
            criterion: &criterion,
            model: &mut model,
            sgd: &mut sgd,
        };
        let trained = training.epoch(epoch, &mut loader, &bar, &mut recorders)?;
        let epoch_train_s = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        state.train_images += trained.seen as u64;
        state.train_s += epoch_train_s;

        let eval = evaluate_epoch(cfg, out, &mut model, &data, &state.history, epoch)?;
        if let (Some(a), Some(train)) = (recorders.analyzer, &unaugmented_train) {
            let record = a.finish(&mut model, train, &data.class_counts, cfg.batch, epoch)?;
            crate::analysis::write(out, &record)?;
        }
        let log = EpochLog {
            epoch,
            lr: sgd.lr,
            train_loss: trained.loss_sum / trained.seen.max(1) as f64,
            img_per_s: trained.seen as f64 / epoch_train_s,
            epoch_s: t0.elapsed().as_secs_f64(),
            data_wait_s: trained.data_wait_s,
            peak_rss_mb: peak_rss_mb(),
            eval,
            balance: recorders
                .balance
                .and_then(|acc| acc.mean())
                .map(|m| balance_rows(&m)),
        };
        if !opts.quiet {
            eprintln!("{}", epoch_line(&log, cfg.epochs));
        }
        jsonl::append(&out.join(LOG_FILE), &log)?;
        state.history.push(log);
        state.wall_s = wall_before + started.elapsed().as_secs_f64();
        save_checkpoint(cfg, out, epoch, &model, &sgd, &loader, &state)?;
    }
    if last < cfg.epochs {
        return Ok(Outcome::Stopped { epoch: last });
    }
    let result = summarise(cfg, &data.class_counts, &state)?;
    let json = serde_json::to_vec_pretty(&result).expect("results serialise");
    write_atomic(&out.join(RESULTS_FILE), &json)?;
    Ok(Outcome::Finished(Box::new(result)))
}

/// The evaluation of an evaluated epoch (every `--eval-every` and the last), kept as
/// `best.safetensors` when it is the best so far; `None` on other epochs.
fn evaluate_epoch(
    cfg: &RunConfig,
    out: &Path,
    model: &mut ResNet,
    data: &Prepared,
    history: &[EpochLog],
    epoch: usize,
) -> Result<Option<EvalSummary>> {
    if !epoch.is_multiple_of(cfg.eval_every) && epoch != cfg.epochs {
        return Ok(None);
    }
    let eval = EvalSummary::from(&evaluate(
        model,
        &data.test,
        data.num_classes,
        &data.groups,
        cfg.batch,
    )?);
    hooks::keep_if_best(out, cfg, model, history, epoch, eval.top1)?;
    Ok(Some(eval))
}

/// Writes `OUT/checkpoint.bin` after `epoch`: everything `--resume` needs.
fn save_checkpoint(
    cfg: &RunConfig,
    out: &Path,
    epoch: usize,
    model: &ResNet,
    sgd: &Sgd,
    loader: &Loader<AnySource>,
    state: &RunState,
) -> Result<()> {
    let (params, buffers) = model.named();
    Checkpoint::capture(
        cfg,
        epoch,
        &[params, buffers].concat(),
        sgd.state()?,
        loader.state(),
        &state.history,
        state.wall_s,
        state.train_images,
        state.train_s,
    )?
    .save(&out.join(CHECKPOINT_FILE))
}

/// The device `--device` names, after checking it can be used: `cuda` needs a build with
/// the `cuda` feature and a GPU, and the error says which is missing.
pub fn training_device(cfg: &RunConfig) -> Result<Device> {
    if cfg.device != "cuda" {
        return Ok(Device::Cpu);
    }
    let device = Device::Cuda(0);
    match Tensor::zeros([1], DType::F32).to_device(device) {
        Ok(_) => Ok(device),
        Err(e) => Err(Error::Config(format!(
            "--device cuda: {e}; use --device cpu"
        ))),
    }
}

#[derive(Default)]
struct RunState {
    first_epoch: usize,
    history: Vec<EpochLog>,
    wall_s: f64,
    train_images: u64,
    train_s: f64,
}

/// Top-1/top-5/many/medium/few/ECE of `model` on `test`, in evaluation mode, no tape.
pub fn evaluate(
    model: &mut ResNet,
    test: &Arc<AnySource>,
    num_classes: usize,
    groups: &ClassGroups,
    batch: usize,
) -> Result<Evaluation> {
    model.set_training(false);
    let mut cfg = LoaderConfig::eval(batch.max(256));
    cfg.prefetch = 1;
    let mut loader = Loader::new(test.clone(), cfg)?;
    let mut acc = Accumulator::new(num_classes);
    let outcome = no_grad(|| -> Result<()> {
        for b in loader.epoch() {
            let b = b?;
            let x = Tensor::from_vec(b.images, b.shape.to_vec())?.to_device(model.device())?;
            let logits = model.forward(&x)?;
            // Metrics run on the host: the logits are the evaluation's only download.
            acc.add(&logits.to_vec::<f32>()?, &b.labels)
                .map_err(Error::Config)?;
        }
        Ok(())
    });
    model.set_training(true);
    outcome?;
    acc.finish(groups).map_err(Error::Config)
}

/// The process's peak resident memory (Linux `VmHWM`), in MB; `None` elsewhere.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
