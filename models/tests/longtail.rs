//! Long-tail profile counts, subset choice, and the subset file.

mod common;

use arbor_models::data::{longtail_counts, longtail_subset, LongTailSubset};
use common::TempDir;

#[test]
fn cifar10_if100_counts_are_the_published_ones() {
    let counts = longtail_counts(5000, 10, 100.0).unwrap();
    assert_eq!(counts, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]);
}

#[test]
fn totals_match_the_published_lt_datasets() {
    // The documented dataset sizes of CIFAR-10-LT and CIFAR-100-LT at IF 100, 50, 10.
    for (n_max, classes, totals) in [
        (5000, 10, [12_406, 13_996, 20_431]),
        (500, 100, [10_847, 12_608, 19_573]),
    ] {
        for (imbalance, total) in [100.0, 50.0, 10.0].into_iter().zip(totals) {
            let counts = longtail_counts(n_max, classes, imbalance).unwrap();
            assert_eq!(
                counts.iter().sum::<usize>(),
                total,
                "C={classes} IF={imbalance}"
            );
            assert_eq!(counts[0], n_max);
            assert_eq!(counts[classes - 1], (n_max as f64 / imbalance) as usize);
            assert!(
                counts.windows(2).all(|w| w[0] >= w[1]),
                "counts must not increase"
            );
        }
    }
}

#[test]
fn bad_profiles_are_errors() {
    assert!(longtail_counts(100, 0, 10.0).is_err());
    assert!(longtail_counts(100, 10, 0.5).is_err());
    assert!(longtail_counts(100, 10, f64::NAN).is_err());
    assert_eq!(longtail_counts(100, 10, 1.0).unwrap(), vec![100; 10]);
}

/// Labels of a balanced set of `per_class` images per class, interleaved.
fn balanced_labels(classes: usize, per_class: usize) -> Vec<u32> {
    (0..classes * per_class)
        .map(|i| (i % classes) as u32)
        .collect()
}

#[test]
fn subset_keeps_the_profile_counts_of_distinct_images() {
    let labels = balanced_labels(10, 200);
    let subset = longtail_subset(&labels, 10, 50.0, 7).unwrap();
    assert_eq!(subset.counts, longtail_counts(200, 10, 50.0).unwrap());
    let mut per_class = vec![0; 10];
    for &i in &subset.indices {
        per_class[labels[i] as usize] += 1;
    }
    assert_eq!(per_class, subset.counts);
    let mut sorted = subset.indices.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        subset.indices.len(),
        "an image was chosen twice"
    );
    // Class-major order, as the reference builds its subset.
    let classes: Vec<u32> = subset.indices.iter().map(|&i| labels[i]).collect();
    assert!(classes.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn subset_is_a_function_of_the_seed() {
    let labels = balanced_labels(10, 200);
    let a = longtail_subset(&labels, 10, 100.0, 1).unwrap();
    let b = longtail_subset(&labels, 10, 100.0, 1).unwrap();
    let c = longtail_subset(&labels, 10, 100.0, 2).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.indices, c.indices);
    assert_eq!(a.counts, c.counts);
    // A random subset, not the first n_i images of each class.
    let first_of_class_1: Vec<usize> = (0..a.counts[1]).map(|k| 1 + 10 * k).collect();
    let chosen_1 = &a.indices[a.counts[0]..a.counts[0] + a.counts[1]];
    assert_ne!(chosen_1, &first_of_class_1[..]);
}

#[test]
fn a_class_with_too_few_images_is_an_error() {
    let mut labels = balanced_labels(10, 100);
    // Class 0 loses images to class 1: it can no longer supply n_max = 100.
    for label in labels.iter_mut().filter(|l| **l == 0).take(3) {
        *label = 1;
    }
    let error = longtail_subset(&labels, 10, 10.0, 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("class 0 has 97 images"), "{error}");
    let mut labels = balanced_labels(10, 10);
    labels[2] = 12;
    let error = longtail_subset(&labels, 10, 10.0, 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("label 12 of image 2"), "{error}");
}

#[test]
fn an_imbalance_that_empties_a_class_is_an_error_naming_it() {
    // 10 images in the largest class and IF 20: the last class would get floor(0.5) = 0.
    let error = longtail_subset(&balanced_labels(4, 10), 4, 20.0, 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("class 3 of 4"), "{error}");
    assert!(error.contains("at most 10"), "{error}");
    assert!(longtail_subset(&balanced_labels(4, 10), 4, 10.0, 0).is_ok());
}

#[test]
fn subset_file_round_trips_and_is_checked() {
    let dir = TempDir::new("subset");
    let path = dir.path().join("subset.json");
    let subset = longtail_subset(&balanced_labels(10, 50), 10, 10.0, 3).unwrap();
    subset.save(&path).unwrap();
    assert_eq!(LongTailSubset::load(&path).unwrap(), subset);

    let mut broken = subset.clone();
    broken.indices.pop();
    broken.save(&path).unwrap();
    let error = LongTailSubset::load(&path).unwrap_err().to_string();
    assert!(
        error.contains("subset.json") && error.contains("indices"),
        "{error}"
    );

    std::fs::write(&path, "{ not json").unwrap();
    assert!(LongTailSubset::load(&path)
        .unwrap_err()
        .to_string()
        .contains("subset.json"));
}
