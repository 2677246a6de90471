//! Sources of `--dataset folder`, and `--image-size`/`--normalize` for the list-file
//! datasets: small images (side <= 64) are decoded once into memory and trained with
//! CIFAR's pad-4 crop and flip; larger ones are decoded on demand and trained with
//! RandomResizedCrop, flip and colour jitter, tested on a centre crop.
use super::{AnySource, Prepared};
use crate::config::RunConfig;
use crate::data::folder::{
    channel_stats, decode, image_side, load_resized, parse_normalize, scan, to_chw, ChannelStats,
    NormalizeChoice, SMALL_IMAGE_MAX,
};
use crate::data::imagefolder::{ImageFolderSamples, ImageList, ImageSizes, ImageTransform};
use crate::data::{longtail_subset, CifarSamples, CifarTransform, Normalisation};
use crate::error::{Error, Result};
use crate::metrics::ClassGroups;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The training and test sources of the class folders in `dir`.
pub(super) fn prepare_folder(cfg: &RunConfig, dir: &Path) -> Result<Prepared> {
    let folders = scan(dir)?;
    let num_classes = folders.classes.len();
    let mut train_files = folders.train.clone();
    // The folder is used as it is unless --imb asks for a long-tailed subset of it.
    let subset = if cfg.imb > 1 {
        let labels: Vec<u32> = train_files.iter().map(|&(_, l)| l).collect();
        let mut subset = longtail_subset(&labels, num_classes, cfg.imb as f64, cfg.subset_seed)
            .map_err(|e| Error::Config(format!("--imb {} on {}: {e}", cfg.imb, dir.display())))?;
        subset.train_seed = Some(cfg.seed);
        train_files = subset
            .indices
            .iter()
            .map(|&i| folders.train[i].clone())
            .collect();
        Some(subset)
    } else {
        None
    };
    let side = image_side(&train_files, cfg.image_size)?;
    let choice = parse_normalize(cfg.normalize.as_deref()).map_err(Error::Config)?;
    let mut counts = vec![0usize; num_classes];
    for &(_, l) in &train_files {
        counts[l as usize] += 1;
    }
    let groups = ClassGroups::from_train_counts(&counts);
    let (train, test, normalisation) = if side <= SMALL_IMAGE_MAX {
        let train = load_resized(&train_files, side, num_classes)?;
        let test = load_resized(&folders.test, side, num_classes)?;
        let normalisation = match choice {
            NormalizeChoice::FromData => channel_stats((0..train.len()).map(|i| train.image(i))),
            NormalizeChoice::Fixed(n) => n,
        };
        let source = |d, t| -> Result<AnySource> {
            Ok(AnySource::Cifar(
                CifarSamples::new(Arc::new(d), t)?.with_normalisation(normalisation),
            ))
        };
        (
            source(train, CifarTransform::Train)?,
            source(test, CifarTransform::Test)?,
            normalisation,
        )
    } else {
        let normalisation = match choice {
            NormalizeChoice::FromData => stats_of_files(&train_files, side)?,
            NormalizeChoice::Fixed(n) => n,
        };
        let train = ImageList::from_entries(&dir.join("train"), train_files, num_classes);
        let test = ImageList::from_entries(&dir.join("test"), folders.test.clone(), num_classes);
        let (train, test) = large_sources(train, test, side, normalisation)?;
        (train, test, normalisation)
    };
    Ok(Prepared {
        train: Arc::new(train),
        test: Arc::new(test),
        num_classes,
        class_counts: counts,
        groups,
        subset,
        data_info: Some(serde_json::json!({
            "classes": folders.classes,
            "image_size": side,
            "normalize": { "mean": normalisation.mean, "std": normalisation.std },
        })),
    })
}

/// Decode-on-demand sources at side `side` (test: resize the shorter side to 8/7 of it,
/// as 256 is to 224, then centre crop).
pub(super) fn large_sources(
    train: ImageList,
    test: ImageList,
    side: u32,
    normalisation: Normalisation,
) -> Result<(AnySource, AnySource)> {
    let sizes = ImageSizes {
        crop: side,
        resize: (side * 8).div_ceil(7),
    };
    let source = |list, t| -> Result<AnySource> {
        Ok(AnySource::Folder(
            ImageFolderSamples::with_sizes(list, t, sizes)?.with_normalisation(normalisation),
        ))
    };
    Ok((
        source(train, ImageTransform::Train)?,
        source(test, ImageTransform::Test)?,
    ))
}

/// `--normalize data` for large images: the statistics of every training image resized
/// to `side` x `side`, one image in memory at a time.
fn stats_of_files(files: &[(PathBuf, u32)], side: u32) -> Result<Normalisation> {
    let mut stats = ChannelStats::default();
    for (path, _) in files {
        let rgb = decode(path)?;
        let rgb = image::imageops::resize(&rgb, side, side, image::imageops::FilterType::Triangle);
        stats.add(&to_chw(&rgb));
    }
    Ok(stats.finish())
}

/// The list-file datasets' normalisation: ImageNet's unless `--normalize` fixes another.
pub(super) fn list_normalisation(cfg: &RunConfig) -> Result<Normalisation> {
    match cfg.normalize.as_deref() {
        None => Ok(crate::data::imagefolder::IMAGENET_NORMALISATION),
        spec => match parse_normalize(spec).map_err(Error::Config)? {
            NormalizeChoice::Fixed(n) => Ok(n),
            NormalizeChoice::FromData => Err(Error::Config(format!(
                "--normalize data is for --dataset folder; {} uses imagenet, cifar or six numbers",
                cfg.dataset
            ))),
        },
    }
}
