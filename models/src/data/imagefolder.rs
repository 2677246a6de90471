//! ImageNet-LT, iNaturalist 2018 and Places-LT: JPEG files named by a list file.
//!
//! A list file has one `relative/path label` per line (`ImageNet_LT_train.txt` etc.);
//! paths are resolved against a root folder. Samples are decoded on demand, in the
//! loader's worker threads, and transformed as the MiSLAS code base does with
//! torchvision: training RandomResizedCrop 224 (scale (0.08, 1), ratio (3/4, 4/3)),
//! horizontal flip, ColorJitter(0.4, 0.4, 0.4), normalise; test Resize 256 (shorter
//! side) and CenterCrop 224, normalise.

use std::path::{Path, PathBuf};

use image::RgbImage;
use rand::Rng;

use super::augment::Normalisation;
use super::loader::SampleSource;
use super::seed::DataRng;
use super::DataError;

mod transforms;

pub use transforms::{
    center_crop_window, random_resized_crop_window, resize_shorter_side, ColorJitter, CropWindow,
};

/// The ImageNet statistics used for all three large-scale datasets.
pub const IMAGENET_NORMALISATION: Normalisation = Normalisation {
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
};

/// The images and labels named by one list file.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageList {
    list_file: PathBuf,
    root: PathBuf,
    entries: Vec<(PathBuf, u32)>,
    num_classes: usize,
}

impl ImageList {
    /// Reads `list_file`, resolving paths against `root`.
    ///
    /// `num_classes`: the dataset's class count (so a test list missing a class still
    /// agrees with training); `None` takes the largest label + 1. Blank lines are
    /// skipped; a path may contain spaces (the label is the last field).
    pub fn read(
        list_file: &Path,
        root: &Path,
        num_classes: Option<usize>,
    ) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(list_file).map_err(|e| DataError::io(list_file, e))?;
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() {
                continue;
            }
            let bad_line =
                |why: &str| DataError::format(list_file, format!("line {number}: {why}: `{line}`"));
            let (path, label) = line
                .rsplit_once(char::is_whitespace)
                .ok_or_else(|| bad_line("expected `path label`"))?;
            let label: u32 = label
                .parse()
                .map_err(|_| bad_line("the label is not a non-negative integer"))?;
            if num_classes.is_some_and(|n| label as usize >= n) {
                return Err(bad_line("the label is not below the number of classes"));
            }
            entries.push((PathBuf::from(path.trim_end()), label));
        }
        let num_classes = match num_classes {
            Some(n) => n,
            None => entries
                .iter()
                .map(|&(_, l)| l as usize + 1)
                .max()
                .unwrap_or(0),
        };
        if entries.is_empty() {
            return Err(DataError::format(list_file, "lists no image"));
        }
        Ok(ImageList {
            list_file: list_file.to_path_buf(),
            root: root.to_path_buf(),
            entries,
            num_classes,
        })
    }

    /// A list made in memory (a class-folder dataset): `source` names it in errors,
    /// `entries` are full paths (the root is empty) with their labels.
    pub fn from_entries(source: &Path, entries: Vec<(PathBuf, u32)>, num_classes: usize) -> Self {
        ImageList {
            list_file: source.to_path_buf(),
            root: PathBuf::new(),
            entries,
            num_classes,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the list names no image (never, for a list that was read).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The list file this was read from.
    pub fn list_file(&self) -> &Path {
        &self.list_file
    }

    /// Full path of image `index`. Panics if `index >= len()`, like slice indexing.
    pub fn path(&self, index: usize) -> PathBuf {
        self.root.join(&self.entries[index].0)
    }

    /// Label of image `index`. Panics if `index >= len()`.
    pub fn label(&self, index: usize) -> u32 {
        self.entries[index].1
    }

    /// Images per class, from the list (for a training list: the counts that sort
    /// classes into many/medium/few, see `metrics::ClassGroups::from_train_counts`).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &(_, label) in &self.entries {
            counts[label as usize] += 1;
        }
        counts
    }

    /// Decodes image `index` as 8-bit RGB (grey or CMYK JPEGs are converted).
    pub fn decode(&self, index: usize) -> Result<RgbImage, DataError> {
        let path = self.path(index);
        let image = image::ImageReader::open(&path)
            .map_err(|e| DataError::io(&path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(&path, e))?
            .decode()
            .map_err(|e| DataError::format(&path, format!("cannot decode image: {e}")))?;
        if image.width() == 0 || image.height() == 0 {
            return Err(DataError::format(&path, "image has no pixels"));
        }
        Ok(image.into_rgb8())
    }
}

/// Training or test preprocessing of image-folder datasets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ImageTransform {
    /// RandomResizedCrop, horizontal flip, colour jitter, normalise.
    Train,
    /// Resize the shorter side, centre crop, normalise.
    Test,
}

/// Output size of the transforms: crop side and the test-time shorter-side resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSizes {
    /// Side of the square output, 224 in the protocol.
    pub crop: u32,
    /// Shorter side before the test-time centre crop, 256 in the protocol.
    pub resize: u32,
}

impl Default for ImageSizes {
    fn default() -> Self {
        ImageSizes {
            crop: 224,
            resize: 256,
        }
    }
}

/// An [`ImageList`] seen through an [`ImageTransform`], for the loader.
#[derive(Clone, Debug)]
pub struct ImageFolderSamples {
    list: ImageList,
    transform: ImageTransform,
    sizes: ImageSizes,
    normalisation: Normalisation,
}

impl ImageFolderSamples {
    /// The same images through another transform (the analysis reads the training set
    /// un-augmented).
    pub fn with_transform(&self, transform: ImageTransform) -> Self {
        ImageFolderSamples {
            transform,
            ..self.clone()
        }
    }

    /// Serves `list` through `transform` at the protocol's sizes.
    pub fn new(list: ImageList, transform: ImageTransform) -> Self {
        ImageFolderSamples {
            list,
            transform,
            sizes: ImageSizes::default(),
            normalisation: IMAGENET_NORMALISATION,
        }
    }

    /// The same samples normalised with other statistics.
    pub fn with_normalisation(mut self, normalisation: Normalisation) -> Self {
        self.normalisation = normalisation;
        self
    }

    /// Serves `list` through `transform` at other sizes (e.g. a small-resolution run);
    /// the crop must be non-zero and no larger than the test-time resize.
    pub fn with_sizes(
        list: ImageList,
        transform: ImageTransform,
        sizes: ImageSizes,
    ) -> Result<Self, DataError> {
        if sizes.crop == 0 || sizes.resize < sizes.crop {
            return Err(DataError::invalid(format!(
                "image sizes need 0 < crop <= resize, got {sizes:?}"
            )));
        }
        Ok(ImageFolderSamples {
            list,
            transform,
            sizes,
            normalisation: IMAGENET_NORMALISATION,
        })
    }

    /// The underlying list.
    pub fn list(&self) -> &ImageList {
        &self.list
    }

    /// The geometric part of the transform (crop, resize, flip) of a decoded image, as
    /// 8-bit RGB of the output size; colour jitter and normalisation follow in floats.
    fn geometric(&self, image: &RgbImage, rng: &mut DataRng) -> RgbImage {
        let crop = self.sizes.crop;
        let filter = image::imageops::FilterType::Triangle;
        match self.transform {
            ImageTransform::Train => {
                let window = random_resized_crop_window(
                    image.width(),
                    image.height(),
                    (0.08, 1.0),
                    (3.0 / 4.0, 4.0 / 3.0),
                    rng,
                );
                let view = window.view(image);
                let mut out = image::imageops::resize(&*view, crop, crop, filter);
                if rng.gen_bool(0.5) {
                    image::imageops::flip_horizontal_in_place(&mut out);
                }
                out
            }
            ImageTransform::Test => {
                let resized = resize_shorter_side(image, self.sizes.resize);
                let window = center_crop_window(resized.width(), resized.height(), crop);
                window.view(&resized).to_image()
            }
        }
    }
}

impl SampleSource for ImageFolderSamples {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn sample_shape(&self) -> [usize; 3] {
        let side = self.sizes.crop as usize;
        [3, side, side]
    }

    fn label(&self, index: usize) -> u32 {
        self.list.label(index)
    }

    fn write_sample(
        &self,
        index: usize,
        rng: &mut DataRng,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let decoded = self.list.decode(index)?;
        let image = self.geometric(&decoded, rng);
        let mut planes = transforms::to_unit_planes(&image);
        if self.transform == ImageTransform::Train {
            ColorJitter::uniform(0.4).apply(&mut planes, rng);
        }
        self.normalisation.apply_unit(&planes, out)
    }
}
