//! Image-folder datasets on small images the test writes: list parsing, decoding, the
//! torchvision-style transforms and their errors.

mod common;

use std::path::Path;
use std::sync::Arc;

use arbor_models::data::imagefolder::{
    center_crop_window, random_resized_crop_window, resize_shorter_side, ColorJitter, CropWindow,
    ImageFolderSamples, ImageList, ImageSizes, ImageTransform, IMAGENET_NORMALISATION,
};
use arbor_models::data::{DataRng, Loader, LoaderConfig, SampleSource};
use common::TempDir;
use image::{Rgb, RgbImage};
use rand::SeedableRng;

/// Writes `image` to `root/relative`, creating folders; the extension picks the format.
fn save(root: &Path, relative: &str, image: &RgbImage) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save(&path).unwrap();
}

fn solid(width: u32, height: u32, colour: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(width, height, Rgb(colour))
}

/// A root with three images and a list naming them.
fn fixture(dir: &TempDir) -> std::path::PathBuf {
    let root = dir.path().join("images");
    save(&root, "train/n01/a.jpg", &solid(40, 30, [200, 40, 40]));
    save(&root, "train/n02/b c.jpg", &solid(30, 50, [30, 160, 220]));
    save(&root, "train/n02/d.png", &solid(64, 64, [10, 250, 90]));
    let list = dir.path().join("train.txt");
    std::fs::write(
        &list,
        "train/n01/a.jpg 0\n\ntrain/n02/b c.jpg 2\ntrain/n02/d.png 2\n",
    )
    .unwrap();
    list
}

fn write(source: &ImageFolderSamples, index: usize, seed: u64) -> Vec<f32> {
    let [c, h, w] = source.sample_shape();
    let mut out = vec![0.0; c * h * w];
    source
        .write_sample(index, &mut DataRng::seed_from_u64(seed), &mut out)
        .unwrap();
    out
}

#[test]
fn list_is_read_with_counts_and_resolved_paths() {
    let dir = TempDir::new("list");
    let list_file = fixture(&dir);
    let root = dir.path().join("images");
    let list = ImageList::read(&list_file, &root, None).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.num_classes(), 3);
    assert_eq!(list.class_counts(), [1, 0, 2]);
    assert_eq!(list.path(1), root.join("train/n02/b c.jpg"));
    assert_eq!(list.label(2), 2);
    assert_eq!(list.decode(1).unwrap().dimensions(), (30, 50));
    let with_classes = ImageList::read(&list_file, &root, Some(5)).unwrap();
    assert_eq!(with_classes.class_counts(), [1, 0, 2, 0, 0]);
}

#[test]
fn bad_lists_name_the_file_and_line() {
    let dir = TempDir::new("badlist");
    let list = dir.path().join("bad.txt");
    for (text, line, why) in [
        ("a.jpg 0\nb.jpg\n", "line 2", "expected `path label`"),
        (
            "a.jpg 0\n\nb.jpg x\n",
            "line 3",
            "not a non-negative integer",
        ),
        ("a.jpg -1\n", "line 1", "not a non-negative integer"),
        ("a.jpg 7\n", "line 1", "not below the number of classes"),
    ] {
        std::fs::write(&list, text).unwrap();
        let error = ImageList::read(&list, dir.path(), Some(5))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("bad.txt") && error.contains(line) && error.contains(why),
            "{error}"
        );
    }
    std::fs::write(&list, "\n\n").unwrap();
    assert!(ImageList::read(&list, dir.path(), None).is_err());
    let missing = dir.path().join("missing.txt");
    let error = ImageList::read(&missing, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing.txt"), "{error}");
}

#[test]
fn unreadable_images_name_their_path() {
    let dir = TempDir::new("badimg");
    std::fs::write(dir.path().join("junk.jpg"), b"definitely not a jpeg").unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "junk.jpg 0\ngone.jpg 1\n").unwrap();
    let list = ImageList::read(&list, dir.path(), None).unwrap();
    let source = ImageFolderSamples::new(list, ImageTransform::Test);
    let mut out = vec![0.0; 3 * 224 * 224];
    let mut rng = DataRng::seed_from_u64(0);
    let error = source
        .write_sample(0, &mut rng, &mut out)
        .unwrap_err()
        .to_string();
    assert!(error.contains("junk.jpg"), "{error}");
    let error = source
        .write_sample(1, &mut rng, &mut out)
        .unwrap_err()
        .to_string();
    assert!(error.contains("gone.jpg"), "{error}");
}

#[test]
fn test_transform_of_a_solid_image_is_its_normalised_colour() {
    let dir = TempDir::new("solid");
    let list = ImageList::read(&fixture(&dir), &dir.path().join("images"), None).unwrap();
    let source = ImageFolderSamples::new(list, ImageTransform::Test);
    assert_eq!(source.sample_shape(), [3, 224, 224]);
    let out = write(&source, 2, 0); // the lossless PNG
    for (c, &value) in [10u8, 250, 90].iter().enumerate() {
        let expected = (f32::from(value) / 255.0 - IMAGENET_NORMALISATION.mean[c])
            / IMAGENET_NORMALISATION.std[c];
        let plane = &out[c * 224 * 224..(c + 1) * 224 * 224];
        assert!(
            plane.iter().all(|v| (v - expected).abs() < 1e-5),
            "channel {c}"
        );
    }
}

#[test]
fn test_transform_resizes_the_shorter_side_then_crops_the_centre() {
    // Left half red, right half blue: the centre crop must keep the split in the middle.
    let dir = TempDir::new("halves");
    let image = RgbImage::from_fn(60, 40, |x, _| {
        if x < 30 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    save(dir.path(), "h.png", &image);
    let list_file = dir.path().join("l.txt");
    std::fs::write(&list_file, "h.png 0\n").unwrap();
    let list = ImageList::read(&list_file, dir.path(), None).unwrap();
    let out = write(&ImageFolderSamples::new(list, ImageTransform::Test), 0, 0);
    let red = |x: usize| out[112 * 224 + x]; // channel 0, row 112
    let high = (1.0 - IMAGENET_NORMALISATION.mean[0]) / IMAGENET_NORMALISATION.std[0];
    let low = -IMAGENET_NORMALISATION.mean[0] / IMAGENET_NORMALISATION.std[0];
    assert!((red(0) - high).abs() < 1e-4 && (red(100) - high).abs() < 1e-4);
    assert!((red(124) - low).abs() < 1e-4 && (red(223) - low).abs() < 1e-4);
}

#[test]
fn train_transform_is_random_but_reproducible() {
    let dir = TempDir::new("train");
    let gradient = RgbImage::from_fn(80, 60, |x, y| Rgb([(x * 3) as u8, (y * 4) as u8, 128]));
    save(dir.path(), "g.png", &gradient);
    let list_file = dir.path().join("l.txt");
    std::fs::write(&list_file, "g.png 0\n").unwrap();
    let list = ImageList::read(&list_file, dir.path(), None).unwrap();
    let source = ImageFolderSamples::new(list, ImageTransform::Train);
    let a = write(&source, 0, 1);
    assert_eq!(a.len(), 3 * 224 * 224);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, write(&source, 0, 1));
    assert_ne!(a, write(&source, 0, 2));
}

#[test]
fn smaller_sizes_are_allowed_for_low_resolution_runs() {
    let dir = TempDir::new("small");
    let list = ImageList::read(&fixture(&dir), &dir.path().join("images"), None).unwrap();
    let sizes = ImageSizes {
        crop: 56,
        resize: 64,
    };
    let source = ImageFolderSamples::with_sizes(list.clone(), ImageTransform::Test, sizes).unwrap();
    assert_eq!(source.sample_shape(), [3, 56, 56]);
    assert_eq!(write(&source, 0, 0).len(), 3 * 56 * 56);
    let bad = ImageSizes {
        crop: 64,
        resize: 56,
    };
    assert!(ImageFolderSamples::with_sizes(list, ImageTransform::Test, bad).is_err());
}

#[test]
fn the_loader_batches_decoded_images() {
    let dir = TempDir::new("loader");
    let list = ImageList::read(&fixture(&dir), &dir.path().join("images"), None).unwrap();
    let source = Arc::new(ImageFolderSamples::new(list, ImageTransform::Train));
    let mut loader = Loader::new(source, LoaderConfig::train(2, 0)).unwrap();
    let batches: Vec<_> = loader.epoch().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].shape, [2, 3, 224, 224]);
    assert_eq!(batches[1].images.len(), 3 * 224 * 224);
    let mut labels: Vec<u32> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    labels.sort_unstable();
    assert_eq!(labels, [0, 2, 2]);
}

#[test]
fn random_resized_crop_windows_respect_scale_ratio_and_bounds() {
    let mut rng = DataRng::seed_from_u64(3);
    let (width, height) = (500u32, 375u32);
    for _ in 0..2000 {
        let w = random_resized_crop_window(width, height, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert!(w.width >= 1 && w.left + w.width <= width, "{w:?}");
        assert!(w.height >= 1 && w.top + w.height <= height, "{w:?}");
        let area = f64::from(w.width * w.height) / f64::from(width * height);
        // Rounding each side to whole pixels moves area and ratio slightly.
        assert!((0.075..=1.0).contains(&area), "{w:?} area {area}");
        let ratio = f64::from(w.width) / f64::from(w.height);
        assert!((0.70..=1.40).contains(&ratio), "{w:?} ratio {ratio}");
    }
}

#[test]
fn random_resized_crop_falls_back_to_a_clamped_centre_crop() {
    let mut rng = DataRng::seed_from_u64(0);
    let impossible = (2.0, 3.0); // never fits: the fallback is all that is left
    let ratio = (0.75, 4.0 / 3.0);
    let whole = random_resized_crop_window(400, 300, impossible, ratio, &mut rng);
    assert_eq!(
        whole,
        CropWindow {
            left: 0,
            top: 0,
            width: 400,
            height: 300
        }
    );
    let wide = random_resized_crop_window(1000, 10, impossible, ratio, &mut rng);
    assert_eq!(
        wide,
        CropWindow {
            left: 493,
            top: 0,
            width: 13,
            height: 10
        }
    );
    let tall = random_resized_crop_window(10, 1000, impossible, ratio, &mut rng);
    assert_eq!(
        tall,
        CropWindow {
            left: 0,
            top: 493,
            width: 10,
            height: 13
        }
    );
}

#[test]
fn resize_and_centre_crop_follow_torchvision_rounding() {
    assert_eq!(
        resize_shorter_side(&solid(40, 30, [0; 3]), 256).dimensions(),
        (341, 256)
    );
    assert_eq!(
        resize_shorter_side(&solid(30, 50, [0; 3]), 256).dimensions(),
        (256, 426)
    );
    // Python's round(): 58.5 -> 58, 16.5 -> 16, 17.5 -> 18.
    assert_eq!(
        center_crop_window(341, 256, 224),
        CropWindow {
            left: 58,
            top: 16,
            width: 224,
            height: 224
        }
    );
    assert_eq!(
        center_crop_window(257, 259, 224),
        CropWindow {
            left: 16,
            top: 18,
            width: 224,
            height: 224
        }
    );
}

#[test]
fn colour_jitter_of_strength_zero_is_identity_and_brightness_scales() {
    let planes: Vec<f32> = (0..48).map(|i| i as f32 / 60.0).collect();
    let mut rng = DataRng::seed_from_u64(5);
    let mut same = planes.clone();
    ColorJitter::uniform(0.0).apply(&mut same, &mut rng);
    assert_eq!(same, planes);

    let brightness = ColorJitter {
        brightness: 0.4,
        contrast: 0.0,
        saturation: 0.0,
    };
    for _ in 0..50 {
        let mut jittered = planes.clone();
        brightness.apply(&mut jittered, &mut rng);
        let factor = jittered[30] / planes[30];
        assert!((0.6..=1.4).contains(&factor), "factor {factor}");
        for (j, p) in jittered.iter().zip(&planes) {
            assert!((j - (p * factor).min(1.0)).abs() < 1e-5);
        }
    }

    // Saturation blends each pixel with its own grey level: a grey pixel stays grey.
    let grey: Vec<f32> = [0.3f32; 3].iter().flat_map(|&v| [v; 4]).collect();
    let mut out = grey.clone();
    ColorJitter {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 1.0,
    }
    .apply(&mut out, &mut rng);
    assert!(out.iter().zip(&grey).all(|(a, b)| (a - b).abs() < 1e-3));
}
