//! `repro eval`: a weights file evaluated on a test split with the trainer's metrics
//! (`results.json`), plus what it predicted for every image (`predictions.csv`).
use crate::config::RunConfig;
use crate::data::{Loader, LoaderConfig, SampleSource};
use crate::error::{write_atomic, Error, Result};
use crate::metrics::{Accumulator, Evaluation};
use crate::resnet::{Arch, ResNet};
use crate::train::report::EvalSummary;
use crate::train::source::{prepare, AnySource};
use crate::weights::{self, load_into, LoadPolicy, RawTensor};
use arbor_engine::{no_grad, DType, Device, Tensor};
use safetensors::Dtype;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const PREDICTIONS_FILE: &str = "predictions.csv";
pub const EVAL_RESULTS_FILE: &str = "results.json";

/// What one test image got.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Position in the test split.
    pub index: usize,
    pub label: u32,
    pub predicted: usize,
    /// Softmax probability of the predicted class.
    pub confidence: f64,
    /// The (up to) five highest-scoring classes, best first.
    pub top5: Vec<usize>,
}

impl Prediction {
    /// From one row of logits: ties go to the lower class index, as `argmax` does.
    pub fn from_logits(index: usize, label: u32, logits: &[f32]) -> Self {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let max = logits[order[0]] as f64;
        // Softmax of the best logit: 1 / sum_j exp(l_j - l_max), in f64.
        let denom: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        order.truncate(5);
        Prediction {
            index,
            label,
            predicted: order[0],
            confidence: 1.0 / denom,
            top5: order,
        }
    }
}

/// The test split's inputs exactly as the model saw them, for checking another tool.
pub struct Inputs {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub sample_shape: [usize; 3],
}

/// Evaluates `model` on `test` in evaluation mode; `keep_inputs` also returns the inputs.
pub fn predict(
    model: &mut ResNet,
    test: &Arc<AnySource>,
    num_classes: usize,
    groups: &crate::metrics::ClassGroups,
    batch: usize,
    keep_inputs: bool,
) -> Result<(Evaluation, Vec<Prediction>, Option<Inputs>)> {
    model.set_training(false);
    // The trainer's evaluation batch, so the figures match its results.json exactly.
    let mut loader = Loader::new(test.clone(), LoaderConfig::eval(batch.max(256)))?;
    let mut acc = Accumulator::new(num_classes);
    let mut predictions = Vec::with_capacity(test.len());
    let mut inputs = keep_inputs.then(|| Inputs {
        images: Vec::new(),
        labels: Vec::new(),
        sample_shape: test.sample_shape(),
    });
    let outcome = no_grad(|| -> Result<()> {
        for b in loader.epoch() {
            let b = b?;
            let x =
                Tensor::from_vec(b.images.clone(), b.shape.to_vec())?.to_device(model.device())?;
            let logits = model.forward(&x)?.to_vec::<f32>()?;
            acc.add(&logits, &b.labels).map_err(Error::Config)?;
            for ((row, &label), &index) in logits.chunks(num_classes).zip(&b.labels).zip(&b.indices)
            {
                predictions.push(Prediction::from_logits(index, label, row));
            }
            if let Some(i) = inputs.as_mut() {
                i.images.extend_from_slice(&b.images);
                i.labels.extend_from_slice(&b.labels);
            }
        }
        Ok(())
    });
    model.set_training(true);
    outcome?;
    Ok((
        acc.finish(groups).map_err(Error::Config)?,
        predictions,
        inputs,
    ))
}

/// `predictions.csv`: `index,label,predicted,confidence,top5` (top-5 space-separated).
pub fn predictions_csv(predictions: &[Prediction]) -> String {
    let mut s = String::from("index,label,predicted,confidence,top5\n");
    for p in predictions {
        let top5: Vec<String> = p.top5.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            s,
            "{},{},{},{:.6},{}",
            p.index,
            p.label,
            p.predicted,
            p.confidence,
            top5.join(" ")
        );
    }
    s
}

/// `inputs.safetensors`: `images` F32 `[N, 3, H, W]` (normalised) and `labels` I64 `[N]`.
pub fn save_inputs(path: &Path, inputs: &Inputs) -> Result<()> {
    let n = inputs.labels.len();
    let [c, h, w] = inputs.sample_shape;
    let raw = [
        RawTensor {
            name: "images".into(),
            dtype: Dtype::F32,
            dims: vec![n, c, h, w],
            bytes: inputs.images.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        RawTensor {
            name: "labels".into(),
            dtype: Dtype::I64,
            dims: vec![n],
            bytes: inputs
                .labels
                .iter()
                .flat_map(|&l| i64::from(l).to_le_bytes())
                .collect(),
        },
    ];
    write_atomic(path, &weights::encode_raw(&raw, &HashMap::new())?)
}

/// What `repro eval` writes to `results.json`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalResult {
    pub weights: PathBuf,
    pub arch: String,
    pub dataset: String,
    pub samples: usize,
    #[serde(flatten)]
    pub metrics: EvalSummary,
}

/// One `repro eval`.
pub struct EvalJob {
    pub weights: PathBuf,
    /// `None`: the file's `arch` metadata.
    pub arch: Option<Arch>,
    /// The dataset, split and device (its `arch` is replaced by the one resolved here).
    pub config: RunConfig,
    pub out: PathBuf,
    pub save_inputs: Option<PathBuf>,
}

/// Reads, checks, evaluates and writes `results.json` and `predictions.csv` into
/// `job.out`; returns the result and the loader's notes. Nothing is written when the file
/// does not fit.
pub fn run_eval(job: &EvalJob) -> Result<(EvalResult, Vec<String>)> {
    let file = weights::read(&job.weights)?;
    let arch = match (job.arch, file.metadata.get("arch")) {
        (Some(a), _) => a,
        (None, Some(a)) => a
            .parse()
            .map_err(|e| Error::file(&job.weights, format!("metadata arch: {e}; pass --arch")))?,
        (None, None) => {
            return Err(Error::Config(format!(
                "{} names no architecture in its metadata: pass --arch",
                job.weights.display()
            )))
        }
    };
    let mut cfg = job.config.clone();
    cfg.arch = arch;
    let device = crate::train::training_device(&cfg)?;
    let data = prepare(&cfg)?;
    let mut model = ResNet::new(arch, data.num_classes, DType::F32, 0)?;
    let report = load_into(&model, &file, &job.weights, LoadPolicy::Exact)?;
    if device != Device::Cpu {
        model.to_device(device)?;
    }
    let (evaluation, predictions, inputs) = predict(
        &mut model,
        &data.test,
        data.num_classes,
        &data.groups,
        cfg.batch,
        job.save_inputs.is_some(),
    )?;
    let result = EvalResult {
        weights: job.weights.clone(),
        arch: arch.to_string(),
        dataset: cfg.dataset.to_string(),
        samples: evaluation.samples,
        metrics: EvalSummary::from(&evaluation),
    };
    std::fs::create_dir_all(&job.out).map_err(|e| Error::io(&job.out, e))?;
    write_atomic(
        &job.out.join(PREDICTIONS_FILE),
        predictions_csv(&predictions).as_bytes(),
    )?;
    let json = serde_json::to_vec_pretty(&result).expect("results serialise");
    write_atomic(&job.out.join(EVAL_RESULTS_FILE), &json)?;
    if let (Some(path), Some(inputs)) = (&job.save_inputs, &inputs) {
        save_inputs(path, inputs)?;
    }
    Ok((result, report.notes))
}
