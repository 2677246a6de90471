//! Metrics on small cases computed by hand.

use arbor_models::metrics::{evaluate, Accumulator, ClassGroups};

const LN3: f32 = 1.098_612_3; // softmax([ln 3, 0]) = (0.75, 0.25)
const LN9: f32 = 2.197_224_6; // softmax([ln 9, 0]) = (0.9, 0.1)

/// Four 2-class samples:
/// A [ln3, 0] label 0: right, confidence 0.75
/// B [ln3, 0] label 1: wrong, confidence 0.75
/// C [ln9, 0] label 0: right, confidence 0.9
/// D [0, 0]   label 0: a tie, predicted class 0, right, confidence 0.5
fn four_samples() -> (Vec<f32>, Vec<u32>) {
    (
        vec![LN3, 0.0, LN3, 0.0, LN9, 0.0, 0.0, 0.0],
        vec![0, 1, 0, 0],
    )
}

#[test]
fn accuracies_and_ece_of_the_hand_computed_case() {
    let (logits, labels) = four_samples();
    let groups = ClassGroups::from_index_ranges(2, 1, 1).unwrap(); // many {0}, few {1}
    let eval = evaluate(&logits, &labels, 2, &groups).unwrap();
    assert_eq!(eval.samples, 4);
    assert_eq!(eval.top1, 75.0);
    assert_eq!(
        eval.top5, 100.0,
        "with 2 classes every label is in the top 5"
    );
    assert_eq!(eval.per_class, [Some(100.0), Some(0.0)]);
    assert_eq!(
        (eval.many, eval.medium, eval.few),
        (Some(100.0), None, Some(0.0))
    );
    // Bins (11/15, 12/15] holds A and B: |0.75 + 0.75 - 1| = 0.5; (13/15, 14/15] holds C:
    // |0.9 - 1| = 0.1; (7/15, 8/15] holds D: |0.5 - 1| = 0.5. ECE = 1.1 / 4 = 27.5%.
    assert!((eval.ece - 27.5).abs() < 1e-4, "ece {}", eval.ece);
}

#[test]
fn ece_is_zero_for_a_calibrated_bin_only() {
    // Four samples at confidence 0.75, in one bin: three right is calibrated
    // (|3 - 3| = 0); four right is under-confident (|3 - 4| / 4 = 25%).
    let logits = [LN3, 0.0].repeat(4);
    let groups = ClassGroups::from_index_ranges(2, 2, 2).unwrap();
    let eval = evaluate(&logits, &[0, 0, 0, 1], 2, &groups).unwrap();
    assert!(eval.ece.abs() < 1e-4, "ece {}", eval.ece);
    let eval = evaluate(&logits, &[0, 0, 0, 0], 2, &groups).unwrap();
    assert!((eval.ece - 25.0).abs() < 1e-4, "ece {}", eval.ece);
}

#[test]
fn ece_bins_are_one_fifteenth_wide() {
    // Confidences 0.71 and 0.79 fall in (10/15, 11/15] and (11/15, 12/15]: separate bins,
    // ECE (|0.71 - 1| + |0.79 - 0|) / 2 = 54%. Ten bins would put both in (0.7, 0.8] and
    // give |1.5 - 1| / 2 = 25%.
    let logit = |p: f32| (p / (1.0 - p)).ln();
    let logits = [logit(0.71), 0.0, logit(0.79), 0.0];
    let groups = ClassGroups::from_index_ranges(2, 2, 2).unwrap();
    let eval = evaluate(&logits, &[0, 1], 2, &groups).unwrap();
    assert!((eval.ece - 54.0).abs() < 1e-3, "ece {}", eval.ece);
}

#[test]
fn top5_counts_rank_with_ties_to_the_lower_index() {
    let descending = [6.0f32, 5.0, 4.0, 3.0, 2.0, 1.0];
    let flat = [1.0f32; 6];
    let logits: Vec<f32> = [descending, descending, flat, flat].concat();
    let labels = [4, 5, 0, 5]; // ranks 4, 5, 0, 5
    let groups = ClassGroups::from_index_ranges(6, 2, 4).unwrap();
    let eval = evaluate(&logits, &labels, 6, &groups).unwrap();
    assert_eq!(eval.top5, 50.0);
    assert_eq!(eval.top1, 25.0);
    assert_eq!(eval.per_class[0], Some(100.0));
    assert_eq!(eval.per_class[5], Some(0.0));
    assert_eq!(eval.per_class[1], None, "class 1 has no test sample");
    assert_eq!(eval.many, Some(100.0), "mean over tested classes only");
}

#[test]
fn uniform_logits_sit_at_the_first_bin_edge() {
    // 15 classes, equal logits: confidence 1/15, predicted class 0.
    let logits = vec![0.5f32; 15];
    let groups = ClassGroups::from_index_ranges(15, 5, 10).unwrap();
    let right = evaluate(&logits, &[0], 15, &groups).unwrap();
    assert!((right.ece - 100.0 * 14.0 / 15.0).abs() < 1e-4);
    let wrong = evaluate(&logits, &[3], 15, &groups).unwrap();
    assert!((wrong.ece - 100.0 / 15.0).abs() < 1e-4);
}

#[test]
fn accumulating_batches_equals_one_evaluation() {
    let (logits, labels) = four_samples();
    let groups = ClassGroups::from_index_ranges(2, 1, 2).unwrap();
    let mut accumulator = Accumulator::new(2);
    accumulator.add(&logits[..4], &labels[..2]).unwrap();
    accumulator.add(&logits[4..], &labels[2..]).unwrap();
    assert_eq!(
        accumulator.finish(&groups).unwrap(),
        evaluate(&logits, &labels, 2, &groups).unwrap()
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let groups = ClassGroups::from_index_ranges(2, 1, 2).unwrap();
    assert!(evaluate(&[0.0; 3], &[0, 1], 2, &groups).is_err(), "shape");
    assert!(
        evaluate(&[0.0; 4], &[0, 2], 2, &groups).is_err(),
        "label range"
    );
    let error = evaluate(&[0.0, f32::NAN], &[0], 2, &groups).unwrap_err();
    assert!(error.contains("row 0"), "{error}");
    assert!(evaluate(&[], &[], 2, &groups).is_err(), "no samples");
    let wide = ClassGroups::from_index_ranges(3, 1, 2).unwrap();
    assert!(
        evaluate(&[0.0; 2], &[0], 2, &wide).is_err(),
        "groups beyond C"
    );
    let mut accumulator = Accumulator::new(2);
    assert!(accumulator.add(&[0.0, 0.0, 1.0, 0.0], &[0, 5]).is_err());
    assert!(
        accumulator.finish(&groups).is_err(),
        "a failed add adds nothing"
    );
}

#[test]
fn cifar_groups_are_the_protocol_ranges() {
    let ten = ClassGroups::cifar(10).unwrap();
    assert_eq!(
        (ten.many, ten.medium, ten.few),
        (vec![0, 1, 2], vec![3, 4, 5, 6], vec![7, 8, 9])
    );
    let hundred = ClassGroups::cifar(100).unwrap();
    assert_eq!(hundred.many, (0..36).collect::<Vec<_>>());
    assert_eq!(hundred.medium, (36..71).collect::<Vec<_>>());
    assert_eq!(hundred.few, (71..100).collect::<Vec<_>>());
    assert!(ClassGroups::cifar(20).is_err());
    assert!(ClassGroups::from_index_ranges(10, 7, 3).is_err());
}

#[test]
fn count_groups_use_the_100_and_20_thresholds_after_sorting() {
    let counts = [19, 150, 100, 20, 101, 0, 5];
    let groups = ClassGroups::from_train_counts(&counts);
    assert_eq!(groups.many, [1, 4]);
    assert_eq!(groups.medium, [2, 3]);
    assert_eq!(groups.few, [0, 6, 5]);
}
