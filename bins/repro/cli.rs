//! Command-line flags. Every run flag is optional so that presets and the demo can supply
//! defaults and a flag given on the command line overrides them.
use arbor_models::config::RunConfig;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "repro",
    about = "Reproduce the ARB-Loss long-tailed classification experiments",
    long_about = "Reproduce the ARB-Loss long-tailed classification experiments.\n\nWith no command: a demo on the embedded synthetic-lt dataset comparing cross-entropy with ARB-Loss (batch and global counts) on a small ResNet, in a few minutes on a laptop CPU."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train one configuration.
    Train(RunArgs),
    /// Train several losses on the same split and seed; write a comparison table and plots.
    Compare {
        /// Comma-separated losses; `arb:global` / `arb:batch` pick ARB's count mode.
        #[arg(long, value_delimiter = ',', default_value = "ce,arb")]
        losses: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run a reference configuration by name (`repro presets` lists them).
    Preset {
        name: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// List the reference configurations.
    Presets,
    /// Run the whole CIFAR-LT grid and write a paper-style table beside published numbers.
    Paper {
        /// Folder holding `cifar-10-batches-bin/` and `cifar-100-binary/`.
        #[arg(long)]
        data_root: PathBuf,
        /// Only these presets (comma-separated names from `repro presets`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Plot the `--analyze` records of one or more runs: M heatmaps, repulsion/attraction
    /// per class, NC1-NC4 per epoch, norms against class count, and analysis.md.
    Analyze {
        /// Run folders holding analysis.jsonl.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output folder (default: RUN_DIR/analysis for one run, runs/analysis for several).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The demo (also what `repro` with no command runs).
    Demo(RunArgs),
    /// Write a run's weights as safetensors (torchvision names; PyTorch loads them).
    Export(crate::weights_cmd::ExportArgs),
    /// Evaluate safetensors weights on a test split: results.json and predictions.csv.
    Eval(crate::weights_cmd::EvalArgs),
    /// Get the data (`repro data fetch cifar10`) or write a long-tailed subset.
    #[command(subcommand)]
    Data(crate::data_cmd::DataCommand),
}

/// Flags of a run. Unset flags keep the preset's (or the protocol's) value.
///
/// `allow_negative_numbers`: `--lr -1` is the value -1 (and gets the range error naming
/// the flag), not an unknown flag `-1`.
#[derive(Args, Debug, Default, Clone)]
#[command(allow_negative_numbers = true)]
pub struct RunArgs {
    /// synthetic-lt, cifar10-lt, cifar100-lt, imagenet-lt, inat2018 or places-lt
    #[arg(long)]
    pub dataset: Option<String>,
    /// Data folder: CIFAR's binary or Python folder (default ./data, see `repro data
    /// fetch`), the list files and images of the large-scale sets, or train/ + test/
    /// class folders for `--dataset folder`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Imbalance factor (100, 50, 10).
    #[arg(long)]
    pub imb: Option<u32>,
    /// resnet8, resnet20, resnet32 or resnet50
    #[arg(long)]
    pub arch: Option<String>,
    /// ce, focal, cb, ldam, ldam-drw, bsm or arb
    #[arg(long)]
    pub loss: Option<String>,
    /// ARB's class counts: batch or global
    #[arg(long)]
    pub counts: Option<String>,
    /// Mixup alpha (0 disables).
    #[arg(long)]
    pub mixup: Option<f64>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub wd: Option<f64>,
    #[arg(long)]
    pub momentum: Option<f64>,
    /// arb, mislas or cosine
    #[arg(long)]
    pub schedule: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// numpy seed of the long-tailed subset (default 0: the reference's images).
    #[arg(long)]
    pub subset_seed: Option<u32>,
    /// Folder and list-file datasets: network input side (default: folder, the images'
    /// own size; list files, 224).
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Folder and list-file datasets: data (training-set statistics), cifar, imagenet,
    /// or MEAN_R,MEAN_G,MEAN_B,STD_R,STD_G,STD_B.
    #[arg(long)]
    pub normalize: Option<String>,
    /// Worker threads (default: RAYON_NUM_THREADS, else all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu or cuda
    #[arg(long)]
    pub device: Option<String>,
    /// Evaluate on the test set every N epochs (and after the last).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// synthetic-lt: number of classes.
    #[arg(long)]
    pub classes: Option<usize>,
    /// synthetic-lt: training images of the largest class.
    #[arg(long)]
    pub synthetic_max: Option<usize>,
    /// Record the gradient-balance diagnostic (attraction vs repulsion per class).
    #[arg(long)]
    pub diagnostic: bool,
    /// Record the attraction–repulsion matrix and neural-collapse metrics per evaluated
    /// epoch into OUT/analysis.jsonl (plot them with `repro analyze`).
    #[arg(long)]
    pub analyze: bool,
    /// With --analyze: record every N-th evaluated epoch and the last (default 10).
    #[arg(long)]
    pub analyze_every: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Replace an existing --out.
    #[arg(long)]
    pub force: bool,
    /// Stop after this epoch (continue later with --resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// Start from these safetensors weights (a classifier of another class count is
    /// re-initialised).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Train only the classifier (and blocks the file lacks); needs --init-from.
    #[arg(long)]
    pub freeze_backbone: bool,
}

fn parse<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>().map_err(|e| format!("--{flag}: {e}"))
}

impl RunArgs {
    /// `base` with every given flag applied.
    pub fn apply(&self, mut c: RunConfig) -> Result<RunConfig, String> {
        if let Some(v) = &self.dataset {
            c.dataset = parse("dataset", v)?;
        }
        if let Some(v) = &self.data {
            c.data = Some(v.clone());
        }
        if let Some(v) = self.imb {
            c.imb = v;
        } else if c.dataset == arbor_models::config::DatasetKind::Folder {
            c.imb = 1; // a folder is used as it is, already long-tailed
        }
        if let Some(v) = &self.arch {
            c.arch = parse("arch", v)?;
        }
        if let Some(v) = &self.loss {
            v.parse::<arbor_models::loss::LossKind>()
                .map_err(|e| format!("--{e}"))?;
            c.loss = v.clone();
        }
        if let Some(v) = &self.counts {
            c.counts = parse("counts", v)?;
        }
        macro_rules! copy {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        copy!(mixup, epochs, batch, lr, wd, momentum, schedule, seed, threads, device, eval_every);
        if let Some(v) = self.classes {
            c.num_classes_synthetic = v;
        }
        if let Some(v) = self.subset_seed {
            c.subset_seed = v;
        }
        if let Some(v) = self.image_size {
            c.image_size = Some(v);
        }
        if let Some(v) = &self.normalize {
            c.normalize = Some(v.clone());
        }
        if let Some(v) = self.synthetic_max {
            c.synthetic_max = v;
        }
        c.diagnostic |= self.diagnostic;
        if let Some(v) = &self.init_from {
            c.init_from = Some(v.clone());
        }
        c.freeze_backbone |= self.freeze_backbone;
        c.analyze |= self.analyze;
        if let Some(v) = self.analyze_every {
            c.analyze_every = v;
        }
        c.validate()?;
        Ok(c)
    }
}
