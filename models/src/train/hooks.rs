//! The trainer's weights hooks: the starting model (`--init-from`, `--freeze-backbone`)
//! and the best epoch's weights (`best.safetensors`), kept out of the training loop.
use super::report::EpochLog;
use crate::config::RunConfig;
use crate::error::Result;
use crate::resnet::ResNet;
use crate::weights::{self, load_into, LoadPolicy, WeightsMeta};
use arbor_engine::DType;
use std::path::Path;

/// The best evaluated epoch's weights, rewritten whenever an evaluation improves on it.
pub const BEST_FILE: &str = "best.safetensors";

/// The run's model on the host: drawn from the seed, then (unless the run resumes, when
/// the checkpoint replaces every tensor anyway) loaded from `init_from`, then frozen.
/// Returns what the user should be told about the load.
pub fn build_model(
    cfg: &RunConfig,
    num_classes: usize,
    resuming: bool,
) -> Result<(ResNet, Vec<String>)> {
    let mut model = ResNet::new(cfg.arch, num_classes, DType::F32, cfg.seed)?;
    let mut notes = Vec::new();
    if let (Some(path), false) = (&cfg.init_from, resuming) {
        let file = weights::read(path)?;
        let report = load_into(&model, &file, path, LoadPolicy::Init)?;
        notes.push(format!(
            "{} tensors loaded from {}",
            report.loaded,
            path.display()
        ));
        notes.extend(report.notes);
    }
    if cfg.freeze_backbone {
        model.freeze_backbone();
        notes.push(format!(
            "backbone frozen (evaluation-mode batch norm, no gradient); training {}",
            model.head_prefixes().join(", ")
        ));
    }
    Ok((model, notes))
}

/// Writes `best.safetensors` when `top1` beats every earlier evaluation in `history`
/// (the earliest epoch wins ties, as `results.json`'s `best_epoch` does).
pub fn keep_if_best(
    out: &Path,
    cfg: &RunConfig,
    model: &ResNet,
    history: &[EpochLog],
    epoch: usize,
    top1: f64,
) -> Result<bool> {
    let best_so_far = history
        .iter()
        .filter_map(|l| l.eval.as_ref().map(|e| e.top1))
        .fold(f64::NEG_INFINITY, f64::max);
    if top1 <= best_so_far {
        return Ok(false);
    }
    let meta = WeightsMeta {
        epoch: Some(epoch),
        which: Some("best".into()),
        ..WeightsMeta::for_run(cfg, model.num_classes)
    };
    weights::save_model(&out.join(BEST_FILE), model, &meta)?;
    Ok(true)
}
