//! CIFAR augmentation: 4-pixel zero-pad random crop, random horizontal flip, normalise.
//!
//! The steps are separate public functions so each can be tested on its own (the crop
//! works on u8 so its padding is exactly zero before normalisation); [`CifarSamples`]
//! chains them for the loader.

use std::sync::Arc;

use rand::Rng;

use super::loader::SampleSource;
use super::seed::DataRng;
use super::{DataError, Dataset};

/// Per-channel mean and standard deviation of an RGB image with values in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    /// Subtracted first, R, G, B.
    pub mean: [f32; 3],
    /// Divided by after, R, G, B.
    pub std: [f32; 3],
}

/// The CIFAR statistics the protocol prescribes (used for CIFAR-100 and synthetic-lt too).
pub const CIFAR_NORMALISATION: Normalisation = Normalisation {
    mean: [0.4914, 0.4822, 0.4465],
    std: [0.2023, 0.1994, 0.2010],
};

/// Zero padding on every side before the random 32x32 crop.
pub const CIFAR_PAD: usize = 4;

impl Normalisation {
    /// `out[c, p] = (src[c, p] / 255 - mean[c]) / std[c]` for a planar RGB image.
    pub fn apply_u8(&self, src: &[u8], out: &mut [f32]) -> Result<(), DataError> {
        self.apply(src, out, |v| f32::from(v) / 255.0)
    }

    /// `out[c, p] = (src[c, p] - mean[c]) / std[c]` for a planar RGB image in [0, 1].
    pub fn apply_unit(&self, src: &[f32], out: &mut [f32]) -> Result<(), DataError> {
        self.apply(src, out, |v| v)
    }

    fn apply<T: Copy>(
        &self,
        src: &[T],
        out: &mut [f32],
        to_unit: impl Fn(T) -> f32,
    ) -> Result<(), DataError> {
        if src.len() != out.len() || !src.len().is_multiple_of(3) {
            return Err(DataError::invalid(format!(
                "normalise: input of {} values and output of {} must match and hold 3 planes",
                src.len(),
                out.len()
            )));
        }
        let plane = src.len() / 3;
        for (c, (src, out)) in src.chunks(plane).zip(out.chunks_mut(plane)).enumerate() {
            let (mean, inv_std) = (self.mean[c], 1.0 / self.std[c]);
            for (o, &v) in out.iter_mut().zip(src) {
                *o = (to_unit(v) - mean) * inv_std;
            }
        }
        Ok(())
    }
}

/// Where the crop window sits in the zero-padded image, and whether it is mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropFlip {
    /// Row of the window's top edge in the padded image, `0..=2*pad`.
    pub top: usize,
    /// Column of the window's left edge in the padded image, `0..=2*pad`.
    pub left: usize,
    /// Mirror the window left-right.
    pub flip: bool,
}

impl CropFlip {
    /// The window that gives back the original image.
    pub fn identity(pad: usize) -> Self {
        CropFlip {
            top: pad,
            left: pad,
            flip: false,
        }
    }

    /// Uniform offsets in `0..=2*pad`, then a fair coin for the flip (torchvision's
    /// RandomCrop followed by RandomHorizontalFlip).
    pub fn random<R: Rng + ?Sized>(pad: usize, rng: &mut R) -> Self {
        let top = rng.gen_range(0..=2 * pad);
        let left = rng.gen_range(0..=2 * pad);
        CropFlip {
            top,
            left,
            flip: rng.gen_bool(0.5),
        }
    }
}

/// Crops a window of the original size out of `src` (CHW, `shape`) zero-padded by `pad`
/// on every side, mirrored if `params.flip`; writes CHW into `out`.
pub fn pad_crop_flip(
    src: &[u8],
    shape: [usize; 3],
    pad: usize,
    params: CropFlip,
    out: &mut [u8],
) -> Result<(), DataError> {
    let [channels, height, width] = shape;
    let len = channels * height * width;
    if src.len() != len || out.len() != len || params.top > 2 * pad || params.left > 2 * pad {
        return Err(DataError::invalid(format!(
            "pad_crop_flip: shape {shape:?} with pad {pad} and window {params:?} \
             does not fit input {} / output {}",
            src.len(),
            out.len()
        )));
    }
    // Padded coordinate p maps to source coordinate p - pad; anything outside is zero.
    let source_index = |padded: usize, size: usize| padded.checked_sub(pad).filter(|&s| s < size);
    for c in 0..channels {
        let plane = &src[c * height * width..(c + 1) * height * width];
        for y in 0..height {
            let row = &mut out[(c * height + y) * width..(c * height + y + 1) * width];
            let Some(sy) = source_index(params.top + y, height) else {
                row.fill(0);
                continue;
            };
            for (x, value) in row.iter_mut().enumerate() {
                let window_x = if params.flip { width - 1 - x } else { x };
                *value = source_index(params.left + window_x, width)
                    .map_or(0, |sx| plane[sy * width + sx]);
            }
        }
    }
    Ok(())
}

/// Train (crop + flip + normalise) or test (normalise only) preprocessing of CIFAR images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarTransform {
    /// Random crop with 4-pixel zero padding, random horizontal flip, normalise.
    Train,
    /// Normalise only.
    Test,
}

/// An in-memory dataset seen through a [`CifarTransform`]: what the loader batches for
/// CIFAR-10/100-LT and synthetic-lt.
#[derive(Clone, Debug)]
pub struct CifarSamples {
    dataset: Arc<Dataset>,
    transform: CifarTransform,
    normalisation: Normalisation,
}

impl CifarSamples {
    /// Serves `dataset` through `transform`; the images must be 3-channel.
    pub fn new(dataset: Arc<Dataset>, transform: CifarTransform) -> Result<Self, DataError> {
        if dataset.shape()[0] != 3 {
            return Err(DataError::invalid(format!(
                "CIFAR transform needs RGB images, the dataset has shape {:?}",
                dataset.shape()
            )));
        }
        Ok(CifarSamples {
            dataset,
            transform,
            normalisation: CIFAR_NORMALISATION,
        })
    }

    /// The same samples normalised with other statistics (a folder dataset's own).
    pub fn with_normalisation(mut self, normalisation: Normalisation) -> Self {
        self.normalisation = normalisation;
        self
    }

    /// The underlying dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
}

impl SampleSource for CifarSamples {
    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn sample_shape(&self) -> [usize; 3] {
        self.dataset.shape()
    }

    fn label(&self, index: usize) -> u32 {
        self.dataset.labels()[index]
    }

    fn write_sample(
        &self,
        index: usize,
        rng: &mut DataRng,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let image = self.dataset.image(index);
        match self.transform {
            CifarTransform::Test => self.normalisation.apply_u8(image, out),
            CifarTransform::Train => {
                let params = CropFlip::random(CIFAR_PAD, rng);
                let mut cropped = vec![0u8; image.len()];
                pad_crop_flip(image, self.dataset.shape(), CIFAR_PAD, params, &mut cropped)?;
                self.normalisation.apply_u8(&cropped, out)
            }
        }
    }
}
