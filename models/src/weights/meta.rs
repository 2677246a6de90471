//! What a weights file says about itself (safetensors' string-to-string `__metadata__`):
//! enough for another tool to rebuild the model and feed it the right inputs.
use crate::config::{DatasetKind, RunConfig};
use crate::data::imagefolder::IMAGENET_NORMALISATION;
use crate::data::{synthetic, Normalisation, CIFAR_NORMALISATION};
use crate::resnet::Arch;
use std::collections::HashMap;
use std::path::Path;

/// The metadata arbor writes.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsMeta {
    pub arch: Arch,
    pub num_classes: usize,
    /// One name per class (class indices as text where the dataset names none).
    pub class_names: Vec<String>,
    /// The input normalisation the model was trained with.
    pub normalisation: Normalisation,
    pub dataset: Option<String>,
    /// The epoch whose weights these are, and whether it is the run's `final` or `best`.
    pub epoch: Option<usize>,
    pub which: Option<String>,
}

impl WeightsMeta {
    /// The metadata of a model trained by `cfg` with `num_classes` classes.
    pub fn for_run(cfg: &RunConfig, num_classes: usize) -> Self {
        WeightsMeta {
            arch: cfg.arch,
            num_classes,
            class_names: class_names(cfg, num_classes),
            normalisation: normalisation(cfg.dataset),
            dataset: Some(cfg.dataset.to_string()),
            epoch: None,
            which: None,
        }
    }

    /// The string map stored in the file. `format: pt` is what PyTorch's `save_file`
    /// writes, and what tools that read PyTorch checkpoints look for.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("arbor_version".into(), env!("CARGO_PKG_VERSION").into()),
            ("arch".into(), self.arch.to_string()),
            ("num_classes".into(), self.num_classes.to_string()),
            ("class_names".into(), json(&self.class_names)),
            ("mean".into(), json(&self.normalisation.mean)),
            ("std".into(), json(&self.normalisation.std)),
        ]);
        if let Some(d) = &self.dataset {
            m.insert("dataset".into(), d.clone());
        }
        if let Some(e) = self.epoch {
            m.insert("epoch".into(), e.to_string());
        }
        if let Some(w) = &self.which {
            m.insert("which".into(), w.clone());
        }
        m
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain values serialise")
}

/// The normalisation `dataset`'s loader applies.
pub fn normalisation(dataset: DatasetKind) -> Normalisation {
    if dataset.is_large_scale() {
        IMAGENET_NORMALISATION
    } else {
        CIFAR_NORMALISATION
    }
}

/// The synthetic set's shape names; CIFAR's from the names file its binary release ships
/// (`batches.meta.txt`, `fine_label_names.txt`) when the data folder still holds it;
/// otherwise the class indices.
pub fn class_names(cfg: &RunConfig, num_classes: usize) -> Vec<String> {
    let indices = || (0..num_classes).map(|c| c.to_string()).collect();
    let file = match cfg.dataset {
        DatasetKind::SyntheticLt => {
            return (0..num_classes)
                .map(|c| synthetic::class_name(c, num_classes).to_string())
                .collect()
        }
        DatasetKind::Cifar10Lt => ("cifar-10-batches-bin", "batches.meta.txt"),
        DatasetKind::Cifar100Lt => ("cifar-100-binary", "fine_label_names.txt"),
        _ => return indices(),
    };
    let Some(dir) = &cfg.data else {
        return indices();
    };
    names_file(dir, file)
        .filter(|n| n.len() == num_classes)
        .unwrap_or_else(indices)
}

fn names_file(dir: &Path, (folder, file): (&str, &str)) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join(file))
        .or_else(|_| std::fs::read_to_string(dir.join(folder).join(file)))
        .ok()?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    Some(names)
}
