//! Every input the fused losses reject comes back as an `Err` whose message names the
//! problem (and the row, label or class), never as a panic or a NaN. (What the
//! experiments' `Criterion` rejects is in `models/tests/loss_validation.rs`.)
use arbor_engine::ops::loss::{arb_loss, ArbOptions, Target};
use arbor_engine::{DType, Tensor};

fn z(b: usize, c: usize) -> Tensor {
    let v: Vec<f64> = (0..b * c).map(|i| (i % 7) as f64 * 0.3 - 1.0).collect();
    Tensor::from_vec(v, [b, c]).unwrap()
}

/// The error message of `r`, which must be an error.
fn err<T: std::fmt::Debug>(r: arbor_engine::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not mention {p:?}");
    }
}

fn arb(logits: &Tensor, target: Target, counts: &[f64]) -> String {
    err(arb_loss(logits, &target, counts, &ArbOptions::default()))
}

const N: [f64; 4] = [10.0, 5.0, 2.0, 1.0];

#[test]
fn labels_out_of_range_or_miscounted() {
    let m = arb(&z(3, 4), Target::Hard(vec![0, 4, 1]), &N);
    assert_mentions(&m, &["row 1", "4", "out of range", "4 classes"]);
    let m = arb(&z(3, 4), Target::Hard(vec![0, 1]), &N);
    assert_mentions(&m, &["2 labels", "batch of 3"]);
    let mix = |a: Vec<usize>, b: Vec<usize>, lam| Target::Mixup { a, b, lam };
    let m = arb(&z(2, 4), mix(vec![0, 1], vec![1, 9], 0.5), &N);
    assert_mentions(&m, &["row 1", "mixup label b", "9"]);
    let m = arb(&z(2, 4), mix(vec![0, 1, 2], vec![1, 0], 0.5), &N);
    assert_mentions(&m, &["3 mixup labels a", "batch of 2"]);
}

#[test]
fn bad_counts() {
    let m = arb(&z(2, 4), Target::Hard(vec![0, 1]), &[1.0, 2.0, 3.0]);
    assert_mentions(&m, &["3 class counts", "4 classes"]);
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let m = arb(&z(2, 4), Target::Hard(vec![0, 1]), &[1.0, 2.0, bad, 4.0]);
        assert_mentions(&m, &["class 2", "finite and >= 0"]);
    }
}

#[test]
fn a_label_whose_class_has_count_zero() {
    let m = arb(&z(3, 4), Target::Hard(vec![0, 2, 1]), &[1.0, 2.0, 0.0, 4.0]);
    assert_mentions(&m, &["row 1", "label", "2", "n_2 = 0"]);
}

#[test]
fn non_finite_logits_are_reported_with_their_position() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for (b, c) in [(3, 4), (40, 1000)] {
            let mut v = z(b, c).to_vec_f64().unwrap();
            v[(b - 1) * c + 2] = bad;
            v[b * c - 1] = bad; // the first one must be named
            let logits = Tensor::from_vec(v, [b, c]).unwrap();
            for dt in [DType::F32, DType::F64] {
                let logits = logits.to_dtype(dt).unwrap();
                let m = arb(&logits, Target::Hard(vec![0; b]), &[1.0; 1000][..c]);
                assert_mentions(&m, &[&format!("logit [{}, 2]", b - 1), "finite"]);
            }
        }
    }
}

#[test]
fn empty_batch_and_bad_shapes() {
    let empty = Tensor::from_vec(Vec::<f64>::new(), [0, 4]).unwrap();
    assert_mentions(
        &arb(&empty, Target::Hard(vec![]), &N),
        &["empty batch", "B = 0"],
    );
    let flat = Tensor::from_vec(vec![0.0; 4], [4]).unwrap();
    assert_mentions(&arb(&flat, Target::Hard(vec![0]), &N), &["[B, C]"]);
}

#[test]
fn mixup_lam_outside_the_unit_interval() {
    for lam in [-0.1, 1.5, f64::NAN] {
        let t = Target::Mixup {
            a: vec![0, 1],
            b: vec![1, 0],
            lam,
        };
        assert_mentions(&arb(&z(2, 4), t, &N), &["lam", "outside [0, 1]"]);
    }
}

#[test]
fn soft_rows_that_are_not_distributions() {
    let soft = |v: Vec<f64>| Target::Soft(Tensor::from_vec(v, [2, 4]).unwrap());
    let m = arb(
        &z(2, 4),
        soft(vec![0.5, 0.5, 0.0, 0.0, 1.2, -0.2, 0.0, 0.0]),
        &N,
    );
    assert_mentions(&m, &["soft target [1, 1]", "-0.2", "not a probability"]);
    let m = arb(
        &z(2, 4),
        soft(vec![0.5, 0.5, 0.0, 0.0, 0.5, 0.4, 0.0, 0.0]),
        &N,
    );
    assert_mentions(&m, &["row 1", "sums to 0.9"]);
    let m = arb(
        &z(2, 4),
        soft(vec![0.5, 0.5, 0.0, 0.0, 0.5, 0.0, 0.5, 0.0]),
        &[1.0, 1.0, 0.0, 1.0],
    );
    assert_mentions(&m, &["row 1", "class 2", "n_2 = 0"]);
    let wrong = Target::Soft(Tensor::from_vec(vec![0.25; 4], [1, 4]).unwrap());
    assert_mentions(
        &arb(&z(2, 4), wrong, &N),
        &["soft targets [1, 4]", "[2, 4]"],
    );
    let f32_rows = Tensor::from_vec(vec![0.25f32; 8], [2, 4]).unwrap();
    assert_mentions(&arb(&z(2, 4), Target::Soft(f32_rows), &N), &["dtype"]);
}
