//! The torchvision transforms of the image-folder pipeline, re-derived from their
//! documented behaviour: window choice of RandomResizedCrop, Resize of the shorter side,
//! CenterCrop, and ColorJitter's brightness/contrast/saturation.
//!
//! Python's `round` rounds halves to even, so `round_ties_even` is used wherever
//! torchvision rounds.

use image::{GenericImageView, RgbImage, SubImage};
use rand::seq::SliceRandom;
use rand::Rng;

/// A rectangle of an image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropWindow {
    /// Left column.
    pub left: u32,
    /// Top row.
    pub top: u32,
    /// Width in pixels, at least 1.
    pub width: u32,
    /// Height in pixels, at least 1.
    pub height: u32,
}

impl CropWindow {
    /// A view of this window of `image` (which must contain it).
    pub fn view<'a>(&self, image: &'a RgbImage) -> SubImage<&'a RgbImage> {
        image.view(self.left, self.top, self.width, self.height)
    }
}

/// A uniform draw from `[low, high)` that tolerates `low == high`.
fn uniform<R: Rng + ?Sized>(low: f64, high: f64, rng: &mut R) -> f64 {
    low + (high - low) * rng.gen::<f64>()
}

/// RandomResizedCrop's window for a `width` x `height` image: up to 10 tries of an area
/// fraction uniform in `scale` and an aspect ratio log-uniform in `ratio`; when none fits,
/// the largest centred window with the ratio clamped into `ratio`.
pub fn random_resized_crop_window<R: Rng + ?Sized>(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut R,
) -> CropWindow {
    let area = f64::from(width) * f64::from(height);
    let (log_low, log_high) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(scale.0, scale.1, rng);
        let aspect = uniform(log_low, log_high, rng).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w >= 1.0 && h >= 1.0 && w <= f64::from(width) && h <= f64::from(height) {
            let (w, h) = (w as u32, h as u32);
            let top = rng.gen_range(0..=height - h);
            let left = rng.gen_range(0..=width - w);
            return CropWindow {
                left,
                top,
                width: w,
                height: h,
            };
        }
    }
    let in_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if in_ratio < ratio.0 {
        (width, (f64::from(width) / ratio.0).round_ties_even() as u32)
    } else if in_ratio > ratio.1 {
        (
            (f64::from(height) * ratio.1).round_ties_even() as u32,
            height,
        )
    } else {
        (width, height)
    };
    let (w, h) = (w.clamp(1, width), h.clamp(1, height));
    CropWindow {
        left: (width - w) / 2,
        top: (height - h) / 2,
        width: w,
        height: h,
    }
}

/// Resize so the shorter side is `size`, the longer `floor(size * long / short)`
/// (torchvision's `Resize(int)`), with a triangle (bilinear, antialiased) filter.
pub fn resize_shorter_side(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let scaled = |long: u32, short: u32| u64::from(size) * u64::from(long) / u64::from(short);
    let (new_w, new_h) = if w <= h {
        (size, scaled(h, w) as u32)
    } else {
        (scaled(w, h) as u32, size)
    };
    image::imageops::resize(image, new_w, new_h, image::imageops::FilterType::Triangle)
}

/// CenterCrop's window of side `crop` in a `width` x `height` image (the image must be
/// at least `crop` on each side; a smaller side is cropped whole).
pub fn center_crop_window(width: u32, height: u32, crop: u32) -> CropWindow {
    let offset = |size: u32| (f64::from(size.saturating_sub(crop)) / 2.0).round_ties_even() as u32;
    CropWindow {
        left: offset(width),
        top: offset(height),
        width: crop.min(width),
        height: crop.min(height),
    }
}

/// An RGB image as three planes of floats in [0, 1].
pub(super) fn to_unit_planes(image: &RgbImage) -> Vec<f32> {
    let plane = (image.width() * image.height()) as usize;
    let mut planes = vec![0.0; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            planes[c * plane + i] = f32::from(pixel[c]) / 255.0;
        }
    }
    planes
}

/// ColorJitter without hue: each factor uniform in `[max(0, 1 - s), 1 + s]`, the three
/// adjustments applied in a random order, values clamped to [0, 1] after each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorJitter {
    /// Brightness strength: scale all values.
    pub brightness: f32,
    /// Contrast strength: blend with the mean grey level of the image.
    pub contrast: f32,
    /// Saturation strength: blend with each pixel's grey level.
    pub saturation: f32,
}

/// ITU-R 601 luma weights, as torchvision's `rgb_to_grayscale`.
const GREY: [f32; 3] = [0.2989, 0.587, 0.114];

impl ColorJitter {
    /// The same strength for all three adjustments (0.4 in the protocol).
    pub fn uniform(strength: f32) -> Self {
        ColorJitter {
            brightness: strength,
            contrast: strength,
            saturation: strength,
        }
    }

    /// Jitters three planes in [0, 1] in place. The order is drawn first, then the
    /// brightness, contrast and saturation factors, as torchvision does.
    pub fn apply<R: Rng + ?Sized>(&self, planes: &mut [f32], rng: &mut R) {
        let mut order = [0usize, 1, 2];
        order.shuffle(rng);
        let factor = |s: f32, rng: &mut R| {
            uniform(f64::from((1.0 - s).max(0.0)), f64::from(1.0 + s), rng) as f32
        };
        let factors = [
            factor(self.brightness, rng),
            factor(self.contrast, rng),
            factor(self.saturation, rng),
        ];
        let plane = planes.len() / 3;
        for adjustment in order {
            let f = factors[adjustment];
            match adjustment {
                0 => planes
                    .iter_mut()
                    .for_each(|v| *v = (*v * f).clamp(0.0, 1.0)),
                1 => {
                    let mean =
                        (0..plane).map(|i| grey(planes, plane, i)).sum::<f32>() / plane as f32;
                    planes.iter_mut().for_each(|v| *v = blend(*v, mean, f));
                }
                _ => {
                    for i in 0..plane {
                        let g = grey(planes, plane, i);
                        for c in 0..3 {
                            planes[c * plane + i] = blend(planes[c * plane + i], g, f);
                        }
                    }
                }
            }
        }
    }
}

fn grey(planes: &[f32], plane: usize, i: usize) -> f32 {
    (0..3).map(|c| GREY[c] * planes[c * plane + i]).sum()
}

/// `f * value + (1 - f) * towards`, clamped to [0, 1].
fn blend(value: f32, towards: f32, f: f32) -> f32 {
    (f * value + (1.0 - f) * towards).clamp(0.0, 1.0)
}
