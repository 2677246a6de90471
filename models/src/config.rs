//! What one training run is: every knob of the protocol, serialisable so a run folder
//! records exactly what produced it.
use crate::resnet::Arch;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// The datasets of the paper, and the embedded synthetic one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetKind {
    SyntheticLt,
    Cifar10Lt,
    Cifar100Lt,
    ImageNetLt,
    INat2018,
    PlacesLt,
    /// The user's own images: `DIR/train/<class>/*` and `DIR/test/<class>/*`.
    Folder,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 7] = [
        DatasetKind::SyntheticLt,
        DatasetKind::Cifar10Lt,
        DatasetKind::Cifar100Lt,
        DatasetKind::ImageNetLt,
        DatasetKind::INat2018,
        DatasetKind::PlacesLt,
        DatasetKind::Folder,
    ];
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::SyntheticLt => "synthetic-lt",
            DatasetKind::Cifar10Lt => "cifar10-lt",
            DatasetKind::Cifar100Lt => "cifar100-lt",
            DatasetKind::ImageNetLt => "imagenet-lt",
            DatasetKind::INat2018 => "inat2018",
            DatasetKind::PlacesLt => "places-lt",
            DatasetKind::Folder => "folder",
        }
    }
    /// Whether the data comes as list files + JPEGs (the large-scale sets).
    pub fn is_large_scale(self) -> bool {
        matches!(
            self,
            DatasetKind::ImageNetLt | DatasetKind::INat2018 | DatasetKind::PlacesLt
        )
    }
}

impl FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|d| d.name()).collect();
                format!(
                    "unknown dataset `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where ARB-Loss's class counts come from (spec: "Notation").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CountsMode {
    /// Each mini-batch's label counts (the reference default).
    Batch,
    /// The training set's per-class counts (the reference's "ugcc" configs).
    Global,
}

impl FromStr for CountsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "batch" => Ok(CountsMode::Batch),
            "global" => Ok(CountsMode::Global),
            other => Err(format!(
                "unknown counts mode `{other}` (expected batch or global)"
            )),
        }
    }
}

impl std::fmt::Display for CountsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CountsMode::Batch => "batch",
            CountsMode::Global => "global",
        })
    }
}

/// One training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub dataset: DatasetKind,
    /// Data folder (not needed for `synthetic-lt`).
    pub data: Option<PathBuf>,
    /// Imbalance factor `n_max / n_min`.
    pub imb: u32,
    pub arch: Arch,
    /// Loss name (`ce`, `focal`, `cb`, `ldam`, `ldam-drw`, `bsm`, `arb`).
    pub loss: String,
    pub counts: CountsMode,
    /// Mixup's Beta(alpha, alpha); 0 disables mixup.
    pub mixup: f64,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub wd: f64,
    pub momentum: f64,
    /// `arb`, `mislas` or `cosine`.
    pub schedule: String,
    pub seed: u64,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// `cpu` or `cuda`.
    pub device: String,
    pub eval_every: usize,
    /// Synthetic-LT: images of the largest class (CIFAR uses the protocol's 5000 / 500).
    pub synthetic_max: usize,
    pub num_classes_synthetic: usize,
    /// Record the gradient-balance diagnostic each epoch.
    pub diagnostic: bool,
    /// Start from these safetensors weights instead of a random initialisation.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Train only the head (classifier, and blocks the pretrained backbone lacks); the
    /// backbone keeps its weights and batch-norm statistics. Needs `init_from`.
    #[serde(default)]
    pub freeze_backbone: bool,
    /// numpy seed of the long-tailed subset (0: the reference's subset), apart from `seed`.
    #[serde(default)]
    pub subset_seed: u32,
    /// Folder and list-file datasets: side of the square network input.
    #[serde(default)]
    pub image_size: Option<u32>,
    /// Folder and list-file datasets: `data`, `cifar`, `imagenet` or six numbers.
    #[serde(default)]
    pub normalize: Option<String>,
    /// Record the attraction–repulsion matrix and neural-collapse metrics per evaluated
    /// epoch into `analysis.jsonl`.
    #[serde(default)]
    pub analyze: bool,
    /// With `analyze`: record every N-th evaluated epoch (and the last). The collapse
    /// passes cost about as much as a training epoch's forward passes twice, so 1 would
    /// nearly double a CIFAR run; 10 keeps it under 10%.
    #[serde(default = "default_analyze_every")]
    pub analyze_every: usize,
}

fn default_analyze_every() -> usize {
    10
}

impl Default for RunConfig {
    /// The CIFAR protocol's defaults (ResNet-32, 200 epochs, batch 128, lr 0.1, wd 2e-4,
    /// momentum 0.9, the ARB reference's schedule) on CIFAR-10-LT IF 100 with ARB-Loss.
    fn default() -> Self {
        RunConfig {
            dataset: DatasetKind::Cifar10Lt,
            data: None,
            imb: 100,
            arch: Arch::ResNet32,
            loss: "arb".into(),
            counts: CountsMode::Batch,
            mixup: 0.0,
            epochs: 200,
            batch: 128,
            lr: 0.1,
            wd: 2e-4,
            momentum: 0.9,
            schedule: "arb".into(),
            seed: 0,
            threads: 0,
            device: "cpu".into(),
            eval_every: 1,
            synthetic_max: 500,
            num_classes_synthetic: 10,
            diagnostic: false,
            init_from: None,
            freeze_backbone: false,
            subset_seed: 0,
            image_size: None,
            normalize: None,
            analyze: false,
            analyze_every: default_analyze_every(),
        }
    }
}

impl RunConfig {
    /// Rejects settings that cannot make sense, naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if self.imb < 1 {
            return Err(format!("--imb must be >= 1, got {}", self.imb));
        }
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if !positive(self.lr) {
            return Err(format!("--lr must be a positive number, got {}", self.lr));
        }
        if !non_negative(self.wd) {
            return Err(format!("--wd must be >= 0, got {}", self.wd));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!(
                "--momentum must be in [0, 1), got {}",
                self.momentum
            ));
        }
        if !non_negative(self.mixup) {
            return Err(format!(
                "--mixup must be >= 0 (0 disables it), got {}",
                self.mixup
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.threads > cpus * 4 {
            return Err(format!(
                "--threads {} is more than 4 x the {cpus} CPUs of this machine (at most {}; 0 uses every core)",
                self.threads,
                cpus * 4
            ));
        }
        if self.analyze_every == 0 {
            return Err("--analyze-every must be at least 1".into());
        }
        if self.eval_every == 0 {
            return Err("--eval-every must be at least 1".into());
        }
        if !["arb", "mislas", "cosine"].contains(&self.schedule.as_str()) {
            return Err(format!(
                "unknown --schedule `{}` (expected arb, mislas or cosine)",
                self.schedule
            ));
        }
        if !["cpu", "cuda"].contains(&self.device.as_str()) {
            return Err(format!(
                "unknown --device `{}` (expected cpu or cuda)",
                self.device
            ));
        }
        if let Some(hint) = crate::data::hints::missing_data(self.dataset, self.data.as_deref()) {
            return Err(hint);
        }
        if self.image_size == Some(0) {
            return Err("--image-size must be at least 1".into());
        }
        crate::data::folder::parse_normalize(self.normalize.as_deref())?;
        if self.dataset == DatasetKind::SyntheticLt
            && (self.num_classes_synthetic < 2 || self.synthetic_max < 1)
        {
            return Err("synthetic-lt needs at least 2 classes and 1 image per class".into());
        }
        if self.freeze_backbone && self.init_from.is_none() {
            return Err(
                "--freeze-backbone needs --init-from FILE: a frozen random backbone learns nothing (the README says how to get ImageNet weights)"
                    .into(),
            );
        }
        Ok(())
    }
}
