//! CIFAR augmentation: crop/flip geometry, zero padding, normalisation constants.

use std::sync::Arc;

use arbor_models::data::augment::{pad_crop_flip, CropFlip, CIFAR_PAD};
use arbor_models::data::{
    CifarSamples, CifarTransform, DataRng, Dataset, SampleSource, CIFAR_NORMALISATION,
};
use rand::SeedableRng;

const SHAPE: [usize; 3] = [3, 32, 32];

/// An image whose every byte is distinct enough to locate: value = 1 + (c*7 + y*3 + x) % 250.
fn probe_image() -> Vec<u8> {
    let mut image = vec![0u8; 3 * 32 * 32];
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                image[(c * 32 + y) * 32 + x] = 1 + ((c * 7 + y * 3 + x) % 250) as u8;
            }
        }
    }
    image
}

fn crop(image: &[u8], params: CropFlip) -> Vec<u8> {
    let mut out = vec![0u8; image.len()];
    pad_crop_flip(image, SHAPE, CIFAR_PAD, params, &mut out).unwrap();
    out
}

#[test]
fn identity_window_gives_the_image_back() {
    let image = probe_image();
    assert_eq!(crop(&image, CropFlip::identity(CIFAR_PAD)), image);
}

#[test]
fn crop_shifts_content_and_pads_with_zeros() {
    let image = probe_image(); // no zero byte, so zeros can only be padding
    for (top, left) in [(0, 0), (8, 8), (2, 7), (8, 0)] {
        let out = crop(
            &image,
            CropFlip {
                top,
                left,
                flip: false,
            },
        );
        assert_eq!(out.len(), image.len(), "crop keeps the shape");
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let (sy, sx) = (y + top, x + left);
                    let inside = (4..36).contains(&sy) && (4..36).contains(&sx);
                    let expected = if inside {
                        image[(c * 32 + sy - 4) * 32 + sx - 4]
                    } else {
                        0
                    };
                    assert_eq!(
                        out[(c * 32 + y) * 32 + x],
                        expected,
                        "{top},{left} c{c} y{y} x{x}"
                    );
                }
            }
        }
    }
}

#[test]
fn flip_mirrors_rows_and_twice_is_identity() {
    let image = probe_image();
    let flip = CropFlip {
        flip: true,
        ..CropFlip::identity(CIFAR_PAD)
    };
    let once = crop(&image, flip);
    assert_eq!(once[5], image[31 - 5]);
    assert_ne!(once, image);
    assert_eq!(crop(&once, flip), image);
}

#[test]
fn random_windows_cover_the_allowed_range_only() {
    let mut rng = DataRng::seed_from_u64(0);
    let draws: Vec<CropFlip> = (0..2000)
        .map(|_| CropFlip::random(CIFAR_PAD, &mut rng))
        .collect();
    assert!(draws.iter().all(|d| d.top <= 8 && d.left <= 8));
    assert!(draws.iter().any(|d| d.top == 0) && draws.iter().any(|d| d.top == 8));
    assert!(draws.iter().any(|d| d.left == 0) && draws.iter().any(|d| d.left == 8));
    let flips = draws.iter().filter(|d| d.flip).count();
    assert!((800..1200).contains(&flips), "{flips} flips of 2000");
}

#[test]
fn bad_crop_inputs_are_errors() {
    let image = probe_image();
    let mut out = vec![0u8; 10];
    assert!(pad_crop_flip(&image, SHAPE, 4, CropFlip::identity(4), &mut out).is_err());
    let mut out = vec![0u8; image.len()];
    let too_far = CropFlip {
        top: 9,
        left: 0,
        flip: false,
    };
    assert!(pad_crop_flip(&image, SHAPE, 4, too_far, &mut out).is_err());
}

#[test]
fn normalisation_uses_the_cifar_constants_per_channel() {
    assert_eq!(CIFAR_NORMALISATION.mean, [0.4914, 0.4822, 0.4465]);
    assert_eq!(CIFAR_NORMALISATION.std, [0.2023, 0.1994, 0.2010]);
    // Channel c's plane holds values 0, 51 and 255 at pixels 0, 1, 2.
    let mut image = vec![0u8; 3 * 4];
    for c in 0..3 {
        image[c * 4 + 1] = 51;
        image[c * 4 + 2] = 255;
    }
    let mut out = vec![0f32; image.len()];
    CIFAR_NORMALISATION.apply_u8(&image, &mut out).unwrap();
    for c in 0..3 {
        let (m, s) = (CIFAR_NORMALISATION.mean[c], CIFAR_NORMALISATION.std[c]);
        for (p, v) in [(0, 0.0), (1, 0.2), (2, 1.0)] {
            let expected = (v - m) / s;
            assert!((out[c * 4 + p] - expected).abs() < 1e-5, "c{c} p{p}");
        }
    }
    assert!(CIFAR_NORMALISATION
        .apply_u8(&image[..5], &mut out[..5])
        .is_err());
}

fn dataset(images: usize) -> Arc<Dataset> {
    let bytes = (0..images).flat_map(|_| probe_image()).collect();
    Arc::new(Dataset::new(bytes, vec![0; images], 10, SHAPE).unwrap())
}

#[test]
fn test_transform_is_normalisation_only() {
    let samples = CifarSamples::new(dataset(1), CifarTransform::Test).unwrap();
    let mut out = vec![0f32; 3072];
    samples
        .write_sample(0, &mut DataRng::seed_from_u64(9), &mut out)
        .unwrap();
    let mut expected = vec![0f32; 3072];
    CIFAR_NORMALISATION
        .apply_u8(&probe_image(), &mut expected)
        .unwrap();
    assert_eq!(out, expected);
}

#[test]
fn train_transform_is_crop_flip_then_normalise_from_the_rng() {
    let samples = CifarSamples::new(dataset(1), CifarTransform::Train).unwrap();
    for seed in 0..20 {
        let mut out = vec![0f32; 3072];
        samples
            .write_sample(0, &mut DataRng::seed_from_u64(seed), &mut out)
            .unwrap();
        // The same draws, replayed by hand.
        let params = CropFlip::random(CIFAR_PAD, &mut DataRng::seed_from_u64(seed));
        let mut expected = vec![0f32; 3072];
        CIFAR_NORMALISATION
            .apply_u8(&crop(&probe_image(), params), &mut expected)
            .unwrap();
        assert_eq!(out, expected, "seed {seed}");
    }
}

#[test]
fn cifar_samples_need_rgb_images() {
    let grey = Arc::new(Dataset::new(vec![0; 16], vec![0], 1, [1, 4, 4]).unwrap());
    assert!(CifarSamples::new(grey, CifarTransform::Test).is_err());
}
