//! Turns a [`RunConfig`] into training and test sample sources: the long-tailed subset for
//! CIFAR (indices written to the run folder), the generated synthetic set, or list files
//! of JPEGs for the large-scale sets.
use crate::config::{DatasetKind, RunConfig};
use crate::data::cifar_pickle::load_cifar_any;
use crate::data::hints;
use crate::data::imagefolder::{ImageFolderSamples, ImageList, ImageTransform};
use crate::data::{
    generate_synthetic, longtail_subset, CifarKind, CifarSamples, CifarTransform, DataError,
    DataRng, Dataset, LongTailSubset, SampleSource, Split, SyntheticConfig,
};
use crate::error::{Error, Result};
use crate::metrics::ClassGroups;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod folder;

/// Either kind of sample source, so one loader type serves every dataset.
pub enum AnySource {
    Cifar(CifarSamples),
    Folder(ImageFolderSamples),
}

impl SampleSource for AnySource {
    fn len(&self) -> usize {
        match self {
            AnySource::Cifar(s) => s.len(),
            AnySource::Folder(s) => s.len(),
        }
    }
    fn sample_shape(&self) -> [usize; 3] {
        match self {
            AnySource::Cifar(s) => s.sample_shape(),
            AnySource::Folder(s) => s.sample_shape(),
        }
    }
    fn label(&self, index: usize) -> u32 {
        match self {
            AnySource::Cifar(s) => s.label(index),
            AnySource::Folder(s) => s.label(index),
        }
    }
    fn write_sample(
        &self,
        index: usize,
        rng: &mut DataRng,
        out: &mut [f32],
    ) -> std::result::Result<(), DataError> {
        match self {
            AnySource::Cifar(s) => s.write_sample(index, rng, out),
            AnySource::Folder(s) => s.write_sample(index, rng, out),
        }
    }
}

/// Everything the trainer needs to know about the data.
pub struct Prepared {
    pub train: Arc<AnySource>,
    pub test: Arc<AnySource>,
    pub num_classes: usize,
    /// Training images per class.
    pub class_counts: Vec<usize>,
    /// Many/medium/few class groups for the metrics.
    pub groups: ClassGroups,
    /// CIFAR's chosen long-tail indices, to be written into the run folder.
    pub subset: Option<LongTailSubset>,
    /// What a folder dataset found (class names, image size, normalisation), added to
    /// the run's `config.json` under `"data"`.
    pub data_info: Option<serde_json::Value>,
}

impl Prepared {
    /// Writes the chosen indices (`indices.json`) into the run folder.
    pub fn save_indices(&self, out: &Path) -> Result<()> {
        if let Some(s) = &self.subset {
            s.save(&out.join("indices.json"))?;
        }
        if let Some(info) = &self.data_info {
            let path = out.join(crate::train::CONFIG_FILE);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let mut config: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| Error::file(&path, e.to_string()))?;
            config["data"] = info.clone();
            let json = serde_json::to_vec_pretty(&config).expect("config serialises");
            crate::error::write_atomic(&path, &json)?;
        }
        Ok(())
    }
}

/// Loads (or generates) the data of `cfg`.
pub fn prepare(cfg: &RunConfig) -> Result<Prepared> {
    match cfg.dataset {
        DatasetKind::SyntheticLt => {
            let s = generate_synthetic(&SyntheticConfig {
                num_classes: cfg.num_classes_synthetic,
                n_max: cfg.synthetic_max,
                imbalance: cfg.imb as f64,
                test_per_class: 100,
                seed: cfg.seed,
            })?;
            let counts = s.train.class_counts();
            let groups = ClassGroups::from_train_counts(&counts);
            cifar_like(s.train, s.test, counts, groups)
        }
        DatasetKind::Cifar10Lt | DatasetKind::Cifar100Lt => {
            let kind = if cfg.dataset == DatasetKind::Cifar10Lt {
                CifarKind::Cifar10
            } else {
                CifarKind::Cifar100
            };
            let dir = data_dir(cfg)?;
            let full = load_cifar_any(kind, &dir, Split::Train)?;
            let test = load_cifar_any(kind, &dir, Split::Test)?;
            let subset = cifar_subset(cfg, &full)?;
            let train = full.subset(&subset.indices)?;
            let groups = ClassGroups::cifar(kind.num_classes()).map_err(Error::Config)?;
            let mut prepared = cifar_like(train, test, subset.counts.clone(), groups)?;
            prepared.subset = Some(subset);
            Ok(prepared)
        }
        DatasetKind::Folder => folder::prepare_folder(cfg, &data_dir(cfg)?),
        kind => {
            let dir = data_dir(cfg)?;
            let (train_list, test_list, classes) = list_files(kind);
            let train = ImageList::read(&dir.join(train_list), &dir, Some(classes))?;
            let test = ImageList::read(&dir.join(test_list), &dir, Some(classes))?;
            let counts = train.class_counts();
            let groups = ClassGroups::from_train_counts(&counts);
            let normalisation = folder::list_normalisation(cfg)?;
            let (train, test) = match cfg.image_size {
                Some(side) => folder::large_sources(train, test, side, normalisation)?,
                None => (
                    AnySource::Folder(
                        ImageFolderSamples::new(train, ImageTransform::Train)
                            .with_normalisation(normalisation),
                    ),
                    AnySource::Folder(
                        ImageFolderSamples::new(test, ImageTransform::Test)
                            .with_normalisation(normalisation),
                    ),
                ),
            };
            Ok(Prepared {
                train: Arc::new(train),
                test: Arc::new(test),
                num_classes: classes,
                class_counts: counts,
                groups,
                subset: None,
                data_info: None,
            })
        }
    }
}

/// The long-tailed subset of a full CIFAR training set that `cfg` trains on.
fn cifar_subset(cfg: &RunConfig, full: &Dataset) -> Result<LongTailSubset> {
    let mut subset = longtail_subset(
        full.labels(),
        full.num_classes(),
        cfg.imb as f64,
        cfg.subset_seed,
    )?;
    subset.train_seed = Some(cfg.seed);
    Ok(subset)
}

/// The long-tailed subset `cfg` would train on, without loading the test set
/// (`repro data subset`); it records no training seed.
pub fn longtail_of(cfg: &RunConfig) -> Result<LongTailSubset> {
    let kind = match cfg.dataset {
        DatasetKind::Cifar10Lt => CifarKind::Cifar10,
        DatasetKind::Cifar100Lt => CifarKind::Cifar100,
        DatasetKind::Folder => {
            let folders = crate::data::folder::scan(&data_dir(cfg)?)?;
            let labels: Vec<u32> = folders.train.iter().map(|&(_, l)| l).collect();
            let subset = longtail_subset(
                &labels,
                folders.classes.len(),
                cfg.imb as f64,
                cfg.subset_seed,
            )?;
            return Ok(subset);
        }
        other => {
            return Err(Error::Config(format!(
                "--dataset {other}: a long-tailed subset is drawn only for cifar10-lt,                  cifar100-lt and folder"
            )))
        }
    };
    let full = load_cifar_any(kind, &data_dir(cfg)?, Split::Train)?;
    let mut subset = cifar_subset(cfg, &full)?;
    subset.train_seed = None;
    Ok(subset)
}

fn cifar_like(
    train: Dataset,
    test: Dataset,
    class_counts: Vec<usize>,
    groups: ClassGroups,
) -> Result<Prepared> {
    let num_classes = train.num_classes();
    Ok(Prepared {
        train: Arc::new(AnySource::Cifar(CifarSamples::new(
            Arc::new(train),
            CifarTransform::Train,
        )?)),
        test: Arc::new(AnySource::Cifar(CifarSamples::new(
            Arc::new(test),
            CifarTransform::Test,
        )?)),
        num_classes,
        class_counts,
        groups,
        subset: None,
        data_info: None,
    })
}

fn data_dir(cfg: &RunConfig) -> Result<PathBuf> {
    if let Some(message) = hints::missing_data(cfg.dataset, cfg.data.as_deref()) {
        return Err(Error::Config(message));
    }
    let dir = cfg
        .data
        .clone()
        .or_else(|| hints::default_data_dir(cfg.dataset))
        .unwrap_or_default();
    if dir.is_file() {
        return Err(Error::Config(format!(
            "--data {} is a file; it must be the data folder",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Error::Config(hints::no_such_folder(
            cfg.dataset,
            &dir,
            cfg.data.is_some(),
        )));
    }
    Ok(dir)
}

/// The list files the ImageNet-LT / iNaturalist / Places-LT releases ship, and class counts.
fn list_files(kind: DatasetKind) -> (&'static str, &'static str, usize) {
    match kind {
        DatasetKind::ImageNetLt => ("ImageNet_LT_train.txt", "ImageNet_LT_test.txt", 1000),
        DatasetKind::INat2018 => ("iNaturalist18_train.txt", "iNaturalist18_val.txt", 8142),
        _ => ("Places_LT_train.txt", "Places_LT_test.txt", 365),
    }
}
