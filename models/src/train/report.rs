//! What a run writes: one JSON line per epoch (`log.jsonl`), its console line, and
//! `results.json`.
use super::RunState;
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::loss::GradientBalance;
use crate::metrics::Evaluation;
use serde::{Deserialize, Serialize};

/// Test-set metrics of one evaluation (percent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub top1: f64,
    pub top5: f64,
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    pub ece: f64,
    pub per_class_acc: Vec<Option<f64>>,
}

impl From<&Evaluation> for EvalSummary {
    fn from(e: &Evaluation) -> Self {
        EvalSummary {
            top1: e.top1,
            top5: e.top5,
            many: e.many,
            medium: e.medium,
            few: e.few,
            ece: e.ece,
            per_class_acc: e.per_class.clone(),
        }
    }
}

/// Per class: the attraction norm `||G_cc||`, the summed repulsion `sum_k ||G_ck||`, ratio.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BalanceRow {
    pub class: usize,
    pub attraction: f64,
    pub repulsion: f64,
    /// `repulsion / attraction`; `None` when the class had no attraction (absent).
    pub ratio: Option<f64>,
}

/// One line of `log.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    /// Training throughput (images per second of training steps).
    pub img_per_s: f64,
    pub epoch_s: f64,
    /// Seconds the training loop waited for batches (the data path's cost).
    pub data_wait_s: f64,
    /// Peak resident memory of the process so far (Linux), MB.
    pub peak_rss_mb: Option<f64>,
    pub eval: Option<EvalSummary>,
    /// The gradient-balance diagnostic averaged over the epoch (with `--diagnostic`).
    pub balance: Option<Vec<BalanceRow>>,
}

/// `results.json`: the run's configuration, its final and best evaluations, and speed.
/// Accuracies and ECE are in percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub dataset: String,
    pub imb: u32,
    pub arch: String,
    pub loss: String,
    pub counts: String,
    pub mixup: f64,
    pub epochs: usize,
    pub seed: u64,
    pub threads: usize,
    /// SIMD level of the CPU kernels (`avx512`, `avx2`, `portable`; `ARBOR_SIMD`).
    #[serde(default)]
    pub simd: String,
    /// Instruction set of matrixmultiply's GEMM (`avx512`, `avx2+fma`, ...), which picks
    /// its own: AVX-512 on an AVX-512 CPU whatever `simd` says, unless pinned at build
    /// time (`arbor_engine::cpu::matmul::gemm_isa`).
    #[serde(default)]
    pub gemm: String,
    /// Top-1 after the last epoch.
    pub top1_final: f64,
    /// Highest top-1 over the evaluated epochs (selected on the test set, as the reference
    /// reports it).
    pub top1_best: f64,
    pub best_epoch: usize,
    pub top5_final: f64,
    /// Final-epoch many/medium/few-shot accuracy.
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    /// Final-epoch expected calibration error (15 bins) x 100.
    pub ece: f64,
    /// Final-epoch per-class accuracy.
    pub per_class_acc: Vec<Option<f64>>,
    /// The best epoch's full evaluation.
    pub best: EvalSummary,
    pub class_counts: Vec<usize>,
    pub wall_s: f64,
    pub img_per_s: f64,
    /// Share of training time spent waiting for batches.
    pub data_wait_fraction: f64,
    /// Peak resident memory of the process (Linux), MB.
    pub peak_rss_mb: Option<f64>,
}

/// The gradient-balance diagnostic's rows for the log line.
pub(super) fn balance_rows(m: &GradientBalance) -> Vec<BalanceRow> {
    m.per_class()
        .into_iter()
        .enumerate()
        .map(|(class, b)| BalanceRow {
            class,
            attraction: b.attraction,
            repulsion: b.repulsion,
            ratio: b.ratio,
        })
        .collect()
}

/// `results.json` of a finished run: the last evaluation, the best (highest top-1, the
/// earliest on ties) and the run's timing.
pub(super) fn summarise(
    cfg: &RunConfig,
    class_counts: &[usize],
    s: &RunState,
) -> Result<RunResult> {
    let evaluated: Vec<(usize, &EvalSummary)> = s
        .history
        .iter()
        .filter_map(|l| l.eval.as_ref().map(|e| (l.epoch, e)))
        .collect();
    let (_, last) = *evaluated
        .last()
        .ok_or_else(|| Error::Config("the run evaluated no epoch".into()))?;
    // Best = highest top-1; the earliest such epoch on ties.
    let (best_epoch, best) = evaluated
        .iter()
        .copied()
        .fold(None::<(usize, &EvalSummary)>, |acc, (e, ev)| match acc {
            Some((_, b)) if b.top1 >= ev.top1 => acc,
            _ => Some((e, ev)),
        })
        .expect("non-empty");
    Ok(RunResult {
        dataset: cfg.dataset.to_string(),
        imb: cfg.imb,
        arch: cfg.arch.to_string(),
        loss: cfg.loss.clone(),
        counts: cfg.counts.to_string(),
        mixup: cfg.mixup,
        epochs: cfg.epochs,
        seed: cfg.seed,
        threads: rayon::current_num_threads(),
        simd: arbor_engine::cpu::simd::level_name().to_string(),
        gemm: arbor_engine::cpu::matmul::gemm_isa().to_string(),
        top1_final: last.top1,
        top1_best: best.top1,
        best_epoch,
        top5_final: last.top5,
        many: last.many,
        medium: last.medium,
        few: last.few,
        ece: last.ece,
        per_class_acc: last.per_class_acc.clone(),
        best: best.clone(),
        class_counts: class_counts.to_vec(),
        wall_s: s.wall_s,
        img_per_s: s.train_images as f64 / s.train_s.max(1e-9),
        data_wait_fraction: s.history.iter().map(|l| l.data_wait_s).sum::<f64>()
            / s.train_s.max(1e-9),
        peak_rss_mb: super::peak_rss_mb(),
    })
}

/// The console line of one epoch.
pub(super) fn epoch_line(l: &EpochLog, epochs: usize) -> String {
    let mut s = format!(
        "epoch {:>3}/{epochs}  lr {:.4}  loss {:.4}  {:.0} img/s  {:.1}s",
        l.epoch, l.lr, l.train_loss, l.img_per_s, l.epoch_s
    );
    if let Some(e) = &l.eval {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        s += &format!(
            "  | top1 {:.2}  many {}  med {}  few {}  ECE {:.2}",
            e.top1,
            pct(e.many),
            pct(e.medium),
            pct(e.few),
            e.ece
        );
    }
    s
}
