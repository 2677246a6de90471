//! What the experiments' losses reject beyond the engine's own checks
//! (`engine/tests/loss_validation.rs`): unknown names, bad options, counts a loss cannot
//! use, targets a loss is not defined for. Each is an `Err` whose message names the problem.
use arbor_engine::ops::loss::{Reduction, Target};
use arbor_engine::Tensor;
use arbor_models::loss::{CountMode, Criterion, LossKind};

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

const N: [f64; 4] = [10.0, 5.0, 2.0, 1.0];

#[test]
fn a_mixup_partner_missing_from_the_batch_counts() {
    // Batch counts come from `a`; a partner label that is not in the batch has n = 0.
    let crit = Criterion::new("arb".parse().unwrap(), Reduction::Mean, &N).unwrap();
    let t = Target::Mixup {
        a: vec![0, 1],
        b: vec![1, 3],
        lam: 0.5,
    };
    let m = err(crit.loss(&z(2, 4), &t, 1));
    assert_mentions(&m, &["row 1", "mixup label b", "3", "n_3 = 0"]);
}

#[test]
fn names_and_options_of_the_criterion() {
    let m = err("cross-entropy".parse::<LossKind>());
    assert_mentions(
        &m,
        &["cross-entropy", "ce, focal, cb, ldam, ldam-drw, bsm, arb"],
    );
    for name in LossKind::NAMES {
        assert_eq!(name.parse::<LossKind>().unwrap().to_string(), name);
    }
    assert_mentions(&err("median".parse::<Reduction>()), &["mean, sum, none"]);
    assert_mentions(&err("epoch".parse::<CountMode>()), &["global, batch"]);
    let m = err(Criterion::new(
        "cb".parse().unwrap(),
        Reduction::Mean,
        &[3.0, 0.0],
    ));
    assert_mentions(&m, &["cb", "class 1", "count 0"]);
    let m = err(Criterion::new(
        LossKind::Focal { gamma: -1.0 },
        Reduction::Mean,
        &N,
    ));
    assert_mentions(&m, &["gamma = -1"]);
    let crit = Criterion::new("ce".parse().unwrap(), Reduction::Mean, &N).unwrap();
    assert_mentions(
        &err(crit.loss(&z(2, 5), &Target::Hard(vec![0, 1]), 1)),
        &["5 logit columns", "4 class counts"],
    );
    let soft = Target::Soft(Tensor::from_vec(vec![0.25; 8], [2, 4]).unwrap());
    let arb_batch = Criterion::new("arb".parse().unwrap(), Reduction::Mean, &N).unwrap();
    assert_mentions(
        &err(arb_batch.loss(&z(2, 4), &soft, 1)),
        &["batch counts", "soft targets"],
    );
    let focal = Criterion::new("focal".parse().unwrap(), Reduction::Mean, &N).unwrap();
    assert_mentions(
        &err(focal.loss(&z(2, 4), &soft, 1)),
        &["focal", "hard or mixup"],
    );
}
