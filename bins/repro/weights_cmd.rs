//! `repro export` and `repro eval`: weights out of a run folder, and any safetensors
//! weights (arbor's or PyTorch's) evaluated on a test split.
use arbor_models::config::RunConfig;
use arbor_models::predict::{run_eval, EvalJob, EVAL_RESULTS_FILE, PREDICTIONS_FILE};
use arbor_models::weights::export::{default_out, export_run, Which};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run folder (holding checkpoint.bin, and best.safetensors once it evaluated).
    pub run_dir: PathBuf,
    /// Output file (default: RUN_DIR/model.safetensors).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// final (the last epoch) or best (the best evaluated epoch).
    #[arg(long, default_value = "final")]
    pub which: String,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The safetensors file (torchvision tensor names).
    #[arg(long)]
    pub weights: PathBuf,
    /// resnet8, resnet20, resnet32, resnet50 or resnet50-places (default: the file's
    /// `arch` metadata).
    #[arg(long)]
    pub arch: Option<String>,
    /// The dataset whose test split to evaluate on.
    #[arg(long)]
    pub dataset: String,
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The imbalance factor and seed of the training split (they fix the many/medium/few
    /// groups, and synthetic-lt's images).
    #[arg(long)]
    pub imb: Option<u32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// synthetic-lt: number of classes and training images of the largest class.
    #[arg(long)]
    pub classes: Option<usize>,
    #[arg(long)]
    pub synthetic_max: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu or cuda
    #[arg(long)]
    pub device: Option<String>,
    /// Folder for results.json and predictions.csv (default: eval-DATASET beside the
    /// weights file).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the test inputs exactly as the model saw them (normalised `images`
    /// [N, 3, H, W] F32 and `labels` I64) as safetensors, to run another tool on them.
    #[arg(long)]
    pub save_inputs: Option<PathBuf>,
}

pub fn export(a: &ExportArgs) -> Result<(), String> {
    let which: Which = a.which.parse().map_err(|e| format!("--which: {e}"))?;
    let out = a.out.clone().unwrap_or_else(|| default_out(&a.run_dir));
    let epoch = export_run(&a.run_dir, which, &out).map_err(|e| e.to_string())?;
    let from = epoch.map_or(String::new(), |e| format!(" (epoch {e})"));
    println!("{} weights{from} written to {}", a.which, out.display());
    Ok(())
}

/// The flags as a run configuration: the same parsing and validation as `repro train`.
fn eval_config(a: &EvalArgs) -> Result<RunConfig, String> {
    let run = crate::cli::RunArgs {
        dataset: Some(a.dataset.clone()),
        data: a.data.clone(),
        imb: a.imb,
        seed: a.seed,
        classes: a.classes,
        synthetic_max: a.synthetic_max,
        batch: a.batch,
        threads: a.threads,
        device: a.device.clone(),
        ..Default::default()
    };
    run.apply(RunConfig::default())
}

pub fn eval(a: &EvalArgs) -> Result<(), String> {
    let config = eval_config(a)?;
    crate::set_threads(config.threads)?;
    let arch = a
        .arch
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| format!("--arch: {e}"))?;
    let out = a.out.clone().unwrap_or_else(|| {
        let parent = a.weights.parent().unwrap_or(std::path::Path::new("."));
        parent.join(format!("eval-{}", config.dataset))
    });
    let job = EvalJob {
        weights: a.weights.clone(),
        arch,
        config,
        out: out.clone(),
        save_inputs: a.save_inputs.clone(),
    };
    let (r, notes) = run_eval(&job).map_err(|e| e.to_string())?;
    for n in notes {
        eprintln!("note: {n}");
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    println!(
        "{} on {} ({} images): top1 {:.2}  top5 {:.2}  many {}  medium {}  few {}  ECE {:.2}",
        r.arch,
        r.dataset,
        r.samples,
        r.metrics.top1,
        r.metrics.top5,
        pct(r.metrics.many),
        pct(r.metrics.medium),
        pct(r.metrics.few),
        r.metrics.ece
    );
    println!(
        "written: {} and {}",
        out.join(EVAL_RESULTS_FILE).display(),
        out.join(PREDICTIONS_FILE).display()
    );
    if let Some(p) = &a.save_inputs {
        println!("inputs: {}", p.display());
    }
    Ok(())
}
