//! `--dataset folder`: the user's own images, one folder per class.
//!
//! `DIR/train/<class>/*.{png,jpg,jpeg}` and `DIR/test/<class>/*` (or `DIR/val/`). Classes
//! are the training sub-folders sorted by name, a label is a class's index in that order,
//! images within a class are taken in file-name order (so a long-tailed subset drawn from
//! them is reproducible). Every bad input is an error naming the file or folder.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::augment::{Normalisation, CIFAR_NORMALISATION};
use super::imagefolder::IMAGENET_NORMALISATION;
use super::{DataError, Dataset};

/// Largest side trained with CIFAR's pad-and-crop; larger ones use RandomResizedCrop.
pub const SMALL_IMAGE_MAX: u32 = 64;

/// The images of a class-folder dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFolders {
    /// Class names, sorted; label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Training images and labels, class by class.
    pub train: Vec<(PathBuf, u32)>,
    /// Test images and labels.
    pub test: Vec<(PathBuf, u32)>,
}

/// How to normalise: from the training set's statistics, or fixed numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormalizeChoice {
    /// Per-channel mean and std of the training images (`--normalize data`, the default).
    FromData,
    /// `cifar`, `imagenet` or six numbers.
    Fixed(Normalisation),
}

/// Parses `--normalize` (`None`: `data`).
pub fn parse_normalize(spec: Option<&str>) -> Result<NormalizeChoice, String> {
    match spec.unwrap_or("data") {
        "data" => Ok(NormalizeChoice::FromData),
        "cifar" => Ok(NormalizeChoice::Fixed(CIFAR_NORMALISATION)),
        "imagenet" => Ok(NormalizeChoice::Fixed(IMAGENET_NORMALISATION)),
        other => {
            let bad = || {
                format!(
                    "--normalize `{other}`: expected data, cifar, imagenet or six numbers \
                     MEAN_R,MEAN_G,MEAN_B,STD_R,STD_G,STD_B (stds > 0)"
                )
            };
            let v: Vec<f32> = other
                .split(',')
                .map(|s| s.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            if v.len() != 6 || v.iter().any(|x| !x.is_finite()) || v[3..].iter().any(|&s| s <= 0.0)
            {
                return Err(bad());
            }
            Ok(NormalizeChoice::Fixed(Normalisation {
                mean: [v[0], v[1], v[2]],
                std: [v[3], v[4], v[5]],
            }))
        }
    }
}

/// Reads the class folders of `dir`.
pub fn scan(dir: &Path) -> Result<ImageFolders, DataError> {
    let train_dir = dir.join("train");
    let test_dir = [dir.join("test"), dir.join("val")]
        .into_iter()
        .find(|d| d.is_dir())
        .ok_or_else(|| DataError::format(dir, "has no test/ (or val/) folder of classes"))?;
    let classes = sub_folders(&train_dir)?;
    if classes.is_empty() {
        return Err(DataError::format(&train_dir, "holds no class folder"));
    }
    let mut train = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let images = images_in(&train_dir.join(class))?;
        train.extend(images.into_iter().map(|p| (p, label as u32)));
    }
    let mut test = Vec::new();
    for class in sub_folders(&test_dir)? {
        let folder = test_dir.join(&class);
        let label = classes.iter().position(|c| *c == class).ok_or_else(|| {
            DataError::format(
                &folder,
                format!("class `{class}` has no folder in {}", train_dir.display()),
            )
        })?;
        test.extend(images_in(&folder)?.into_iter().map(|p| (p, label as u32)));
    }
    if test.is_empty() {
        return Err(DataError::format(&test_dir, "holds no image"));
    }
    Ok(ImageFolders {
        classes,
        train,
        test,
    })
}

/// Names of the sub-folders of `dir`, sorted.
fn sub_folders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if entry.path().is_dir() {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| DataError::format(dir, format!("folder name {n:?} is not UTF-8")))?;
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The images of one class folder, sorted by name; an empty folder is an error.
fn images_in(folder: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut images = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(|e| DataError::io(folder, e))? {
        let path = entry.map_err(|e| DataError::io(folder, e))?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if path.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            images.push(path);
        }
    }
    if images.is_empty() {
        return Err(DataError::format(
            folder,
            "class folder holds no .png/.jpg/.jpeg image",
        ));
    }
    images.sort();
    Ok(images)
}

/// The network input side: `given`, else the images' common square size.
pub fn image_side(files: &[(PathBuf, u32)], given: Option<u32>) -> Result<u32, DataError> {
    if let Some(side) = given {
        return Ok(side);
    }
    let dims = |p: &Path| {
        image::image_dimensions(p)
            .map_err(|e| DataError::format(p, format!("cannot read the image: {e}")))
    };
    let (first, _) = &files[0];
    let (w, h) = dims(first)?;
    for (path, _) in files {
        let d = dims(path)?;
        if d != (w, h) || w != h {
            return Err(DataError::format(
                path,
                format!(
                    "is {}x{} but {} is {w}x{h}; images differ in size or are not square, \
                     pass --image-size N to resize them all to NxN",
                    d.0,
                    d.1,
                    first.display()
                ),
            ));
        }
    }
    Ok(w)
}

/// Decodes `path` as 8-bit RGB; errors name the file.
pub fn decode(path: &Path) -> Result<image::RgbImage, DataError> {
    let image = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))?;
    Ok(image.into_rgb8())
}

/// Decodes and resizes every image to `side` x `side` into an in-memory CHW dataset.
pub fn load_resized(
    files: &[(PathBuf, u32)],
    side: u32,
    num_classes: usize,
) -> Result<Dataset, DataError> {
    let images: Vec<Vec<u8>> = files
        .par_iter()
        .map(|(path, _)| {
            let rgb = decode(path)?;
            let rgb = if rgb.dimensions() == (side, side) {
                rgb
            } else {
                image::imageops::resize(&rgb, side, side, image::imageops::FilterType::Triangle)
            };
            Ok(to_chw(&rgb))
        })
        .collect::<Result<_, DataError>>()?;
    let labels = files.iter().map(|&(_, l)| l).collect();
    Dataset::new(
        images.concat(),
        labels,
        num_classes,
        [3, side as usize, side as usize],
    )
}

/// Per-channel mean and (population) standard deviation of CHW u8 images, in [0, 1].
pub fn channel_stats<'a>(images: impl Iterator<Item = &'a [u8]>) -> Normalisation {
    let mut stats = ChannelStats::default();
    images.for_each(|image| stats.add(image));
    stats.finish()
}

/// Running sums behind [`channel_stats`], so images can be added one at a time.
#[derive(Clone, Debug, Default)]
pub struct ChannelStats {
    sum: [f64; 3],
    sum_sq: [f64; 3],
    count: f64,
}

impl ChannelStats {
    /// Adds one CHW u8 image.
    pub fn add(&mut self, image: &[u8]) {
        let plane = image.len() / 3;
        for c in 0..3 {
            for &v in &image[c * plane..(c + 1) * plane] {
                let v = f64::from(v) / 255.0;
                self.sum[c] += v;
                self.sum_sq[c] += v * v;
            }
        }
        self.count += plane as f64;
    }

    /// The mean and std so far.
    pub fn finish(&self) -> Normalisation {
        let mut out = Normalisation {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        for c in 0..3 {
            let mean = self.sum[c] / self.count;
            let var = (self.sum_sq[c] / self.count - mean * mean).max(0.0);
            out.mean[c] = mean as f32;
            // A constant channel would divide by zero; leave it unscaled.
            out.std[c] = if var > 0.0 { var.sqrt() as f32 } else { 1.0 };
        }
        out
    }
}

/// An RGB image as CHW bytes.
pub fn to_chw(rgb: &image::RgbImage) -> Vec<u8> {
    let plane = (rgb.width() * rgb.height()) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, pixel) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = pixel[c];
        }
    }
    chw
}
