//! `synthetic-lt`: a built-in, deterministic long-tailed dataset of CIFAR-shaped images.
//!
//! It exists so the whole pipeline (and a ResNet's tail-class weakness) can be exercised
//! without downloading CIFAR. Each class is a *shape* (ring, cross, stripes, ...) drawn at
//! a random position, scale and small rotation, in a random foreground colour over a
//! random background gradient, with clutter and pixel noise. Colours are drawn the same
//! way for every class, so only spatial structure tells classes apart.
//!
//! Classes come in confusable pairs that share a shape and differ in one detail (a ring
//! and a ring with a centre dot; a `+` and a `T`; stripes of period 6 and of period 4,
//! ...). The pairs are laid out head-to-tail, class `c` with class `C-1-c`, so every
//! tail class has a head class it is easily mistaken for. Every shape is symmetric
//! left-right, so the training flip never turns one class into another.

use rand::Rng;
use rayon::prelude::*;

use super::cifar::CIFAR_SHAPE;
use super::longtail::longtail_counts;
use super::seed::{derived_rng, DataRng};
use super::{DataError, Dataset};

mod shapes;

use shapes::FAMILIES;

/// Largest supported class count: two variants of each shape family.
pub const MAX_SYNTHETIC_CLASSES: usize = 2 * FAMILIES.len();

const SIDE: usize = 32;
/// Least luminance gap between a class shape and its background's mean, out of 255:
/// low enough that some shapes are hard to see, high enough that all are there.
const MIN_CONTRAST: f32 = 40.0;
const PLANE: usize = SIDE * SIDE;

/// Parameters of `synthetic-lt`.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Number of classes, 2..=[`MAX_SYNTHETIC_CLASSES`].
    pub num_classes: usize,
    /// Training images of class 0; the others follow the long-tail profile.
    pub n_max: usize,
    /// Imbalance factor IF = n_0 / n_{C-1}.
    pub imbalance: f64,
    /// Test images per class (the test set is balanced).
    pub test_per_class: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    /// 10 classes, 500 down to 5 training images (IF 100), 100 test images per class.
    fn default() -> Self {
        SyntheticConfig {
            num_classes: 10,
            n_max: 500,
            imbalance: 100.0,
            test_per_class: 100,
            seed: 0,
        }
    }
}

/// The generated train and test sets.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticLt {
    /// Long-tailed training set, class-major order.
    pub train: Dataset,
    /// Balanced test set, class-major order.
    pub test: Dataset,
}

/// Generates `synthetic-lt` (in parallel; the result depends only on `config`).
pub fn generate_synthetic(config: &SyntheticConfig) -> Result<SyntheticLt, DataError> {
    if !(2..=MAX_SYNTHETIC_CLASSES).contains(&config.num_classes) {
        return Err(DataError::invalid(format!(
            "synthetic-lt supports 2 to {MAX_SYNTHETIC_CLASSES} classes, got {}",
            config.num_classes
        )));
    }
    let train_counts = longtail_counts(config.n_max, config.num_classes, config.imbalance)?;
    let test_counts = vec![config.test_per_class; config.num_classes];
    Ok(SyntheticLt {
        train: generate_split(config, &train_counts, 0)?,
        test: generate_split(config, &test_counts, 1)?,
    })
}

/// Renders `counts[c]` images of each class `c`; `split` separates the random streams of
/// train and test.
fn generate_split(
    config: &SyntheticConfig,
    counts: &[usize],
    split: u64,
) -> Result<Dataset, DataError> {
    let labels: Vec<u32> = counts
        .iter()
        .enumerate()
        .flat_map(|(class, &n)| std::iter::repeat_n(class as u32, n))
        .collect();
    let mut images = vec![0u8; labels.len() * 3 * PLANE];
    images
        .par_chunks_mut(3 * PLANE)
        .zip(labels.par_iter())
        .enumerate()
        .for_each(|(index, (out, &label))| {
            let mut rng = derived_rng(&[config.seed, split, index as u64]);
            render(label as usize, config.num_classes, &mut rng, out);
        });
    Dataset::new(images, labels, config.num_classes, CIFAR_SHAPE)
}

/// The shape name of class `class` of `num_classes` (e.g. `"ring"`, `"bullseye"`).
pub fn class_name(class: usize, num_classes: usize) -> &'static str {
    let (family, variant) = design(class, num_classes);
    family.names[variant]
}

/// Class `c` and class `C-1-c` share family `min(c, C-1-c)`; the head one is variant 0
/// (the middle class of an odd `C` too).
fn design(class: usize, num_classes: usize) -> (&'static shapes::Family, usize) {
    let mirror = num_classes - 1 - class;
    (&FAMILIES[class.min(mirror)], usize::from(class > mirror))
}

/// Draws one image of `class` into `out` (3x32x32 CHW).
fn render(class: usize, num_classes: usize, rng: &mut DataRng, out: &mut [u8]) {
    let mut canvas = [[0f32; PLANE]; 3];
    paint_background(&mut canvas, rng);
    paint_clutter(&mut canvas, rng);

    // Sometimes a small, faint shape of any class: the label belongs to the large, clear
    // one, so the network cannot just detect "some ring anywhere".
    if rng.gen_bool(0.25) {
        let (family, variant) = design(rng.gen_range(0..num_classes), num_classes);
        let placement = Placement::random(3.5..5.5, rng);
        let colour: [f32; 3] = std::array::from_fn(|_| rng.gen_range(0.0..255.0));
        let opacity = rng.gen_range(0.25..0.5);
        paint_shape(&mut canvas, family, variant, &placement, colour, opacity);
    }

    let (family, variant) = design(class, num_classes);
    let placement = Placement::random(6.5..13.0, rng);
    let colour = foreground_colour(&canvas, rng);
    let opacity = rng.gen_range(0.7..1.0);
    paint_shape(&mut canvas, family, variant, &placement, colour, opacity);

    let noise = rng.gen_range(8.0..32.0f32);
    for (plane, out) in canvas.iter().zip(out.chunks_mut(PLANE)) {
        for (&v, o) in plane.iter().zip(out) {
            *o = (v + rng.gen_range(-noise..noise)).clamp(0.0, 255.0) as u8;
        }
    }
}

/// Where and how large a shape is drawn.
struct Placement {
    /// Half-size in pixels.
    scale: f32,
    /// Centre in pixels.
    centre: [f32; 2],
    /// Rotation in radians, small: never enough to turn an up-triangle into a down one.
    angle: f32,
    /// Offset of textures, in pixels.
    phase: f32,
}

impl Placement {
    /// A half-size drawn from `scale`, a centre keeping most of the shape inside the
    /// image, a rotation within +-0.25 rad.
    fn random(scale: std::ops::Range<f32>, rng: &mut DataRng) -> Self {
        let scale = rng.gen_range(scale);
        let margin = 0.8 * scale;
        let mut coordinate = || rng.gen_range(margin..SIDE as f32 - margin);
        let centre = [coordinate(), coordinate()];
        Placement {
            scale,
            centre,
            angle: rng.gen_range(-0.25..0.25),
            phase: rng.gen_range(0.0..6.0),
        }
    }
}

/// Paints variant `variant` of `family` at `placement` in `colour`.
fn paint_shape(
    canvas: &mut [[f32; PLANE]; 3],
    family: &shapes::Family,
    variant: usize,
    placement: &Placement,
    colour: [f32; 3],
    opacity: f32,
) {
    let (sin, cos) = placement.angle.sin_cos();
    for y in 0..SIDE {
        for x in 0..SIDE {
            // Pixel centre in the shape's rotated frame, in pixels.
            let dx = x as f32 + 0.5 - placement.centre[0];
            let dy = y as f32 + 0.5 - placement.centre[1];
            let (x_px, y_px) = (cos * dx + sin * dy, -sin * dx + cos * dy);
            let point = shapes::Point {
                u: x_px / placement.scale,
                v: y_px / placement.scale,
                x_px,
                y_px: y_px + placement.phase,
                pixel: 1.0 / placement.scale,
            };
            let coverage = (family.mask)(variant, &point) * opacity;
            blend(canvas, y * SIDE + x, colour, coverage);
        }
    }
}

/// A random colour plus a random linear gradient of up to 50 levels per channel.
fn paint_background(canvas: &mut [[f32; PLANE]; 3], rng: &mut DataRng) {
    let angle = rng.gen_range(0.0..std::f32::consts::TAU);
    let (gy, gx) = angle.sin_cos();
    for plane in canvas.iter_mut() {
        let base = rng.gen_range(0.0..255.0f32);
        let amplitude = rng.gen_range(-50.0..50.0f32);
        for (i, value) in plane.iter_mut().enumerate() {
            let (x, y) = (
                (i % SIDE) as f32 / 31.0 - 0.5,
                (i / SIDE) as f32 / 31.0 - 0.5,
            );
            *value = base + amplitude * (gx * x + gy * y);
        }
    }
}

/// Up to four short thin strokes in random colours: small enough never to form a class
/// shape, but they break "any edge means foreground".
fn paint_clutter(canvas: &mut [[f32; PLANE]; 3], rng: &mut DataRng) {
    for _ in 0..rng.gen_range(0..=4) {
        let colour: [f32; 3] = std::array::from_fn(|_| rng.gen_range(0.0..255.0));
        let start = [rng.gen_range(0.0..32.0f32), rng.gen_range(0.0..32.0f32)];
        let angle = rng.gen_range(0.0..std::f32::consts::TAU);
        let length = rng.gen_range(2.0..9.0f32);
        let end = [
            start[0] + length * angle.cos(),
            start[1] + length * angle.sin(),
        ];
        for i in 0..PLANE {
            let p = [(i % SIDE) as f32 + 0.5, (i / SIDE) as f32 + 0.5];
            let coverage = shapes::stroke(shapes::segment_distance(p, start, end), 0.6, 1.0);
            blend(canvas, i, colour, coverage);
        }
    }
}

/// Paints `colour` over pixel `i` with weight `coverage` in [0, 1].
fn blend(canvas: &mut [[f32; PLANE]; 3], i: usize, colour: [f32; 3], coverage: f32) {
    for (plane, c) in canvas.iter_mut().zip(colour) {
        plane[i] += (c - plane[i]) * coverage;
    }
}

/// A random colour whose luminance differs from the background's mean by at least
/// [`MIN_CONTRAST`] levels, so the shape is visible; drawn the same way for every class.
fn foreground_colour(canvas: &[[f32; PLANE]; 3], rng: &mut DataRng) -> [f32; 3] {
    let luminance = |c: [f32; 3]| 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    let background = luminance(std::array::from_fn(|c| {
        canvas[c].iter().sum::<f32>() / PLANE as f32
    }));
    let mut colour: [f32; 3] = std::array::from_fn(|_| rng.gen_range(0.0..255.0));
    let gap = luminance(colour) - background;
    if gap.abs() < MIN_CONTRAST {
        // Shift all channels together (keeping the hue) to the nearer side that fits.
        let target = if background < 128.0 {
            background + MIN_CONTRAST
        } else {
            background - MIN_CONTRAST
        };
        let shift = target - luminance(colour);
        colour = colour.map(|c| (c + shift).clamp(0.0, 255.0));
    }
    colour
}
