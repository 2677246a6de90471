//! What a run writes: one JSON line per epoch (`log.jsonl`) and `results.json`.
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
