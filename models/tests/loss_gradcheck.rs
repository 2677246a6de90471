//! Finite-difference checks (f64) of the fused losses' gradients: ARB-Loss in both count
//! modes and every baseline, with hard, mixup and (where defined) soft targets, under every
//! reduction (`gradcheck` weighs each output element by a random factor, so `none` checks
//! the per-row scaling of the backward too).
use arbor_engine::gradcheck::{check1, param, SplitMix};
use arbor_engine::ops::loss::{arb_loss, batch_counts, ArbOptions, Reduction, Target};
use arbor_engine::Tensor;
use arbor_models::loss::{Criterion, LossKind};

const COUNTS: [f64; 5] = [500.0, 120.0, 40.0, 9.0, 3.0];
const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

fn targets(rng: &mut SplitMix, b: usize, c: usize) -> Vec<Target> {
    let a: Vec<usize> = (0..b).map(|i| (i * 3 + 1) % c).collect();
    let partner: Vec<usize> = (0..b).map(|i| a[(i + 2) % b]).collect();
    let mut soft = rng.vec(b * c, 0.0, 1.0);
    for row in soft.chunks_mut(c) {
        let s: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    vec![
        Target::Hard(a.clone()),
        Target::Mixup {
            a,
            b: partner,
            lam: 0.35,
        },
        Target::Soft(Tensor::from_vec(soft, [b, c]).unwrap()),
    ]
}

#[test]
fn arb_loss_gradients_in_both_count_modes() {
    let mut r = SplitMix::new(11);
    let (b, c) = (6, 5);
    // Some logits beyond the clamp (well away from it, so the difference is one-sided-free).
    let z = param(&mut r, &[b, c], -3.0, 3.0);
    let far = param(&mut r, &[b, c], -45.0, 45.0);
    for target in targets(&mut r, b, c) {
        for reduction in REDUCTIONS {
            for clamp in [true, false] {
                let opts = ArbOptions { clamp, reduction };
                check1(&z, |z| arb_loss(z, &target, &COUNTS, &opts)).unwrap();
                if let Some(y) = target.labels() {
                    let n = batch_counts(y, c);
                    check1(&z, |z| arb_loss(z, &target, &n, &opts)).unwrap();
                }
            }
            let opts = ArbOptions {
                clamp: true,
                reduction,
            };
            check1(&far, |z| arb_loss(z, &target, &COUNTS, &opts)).unwrap();
        }
    }
}

fn check_kind(kind: LossKind, epoch: usize, with_soft: bool) {
    let mut r = SplitMix::new(12);
    let (b, c) = (7, COUNTS.len());
    let z = param(&mut r, &[b, c], -1.5, 1.5);
    for target in targets(&mut r, b, c) {
        if matches!(target, Target::Soft(_)) && !with_soft {
            continue;
        }
        for reduction in REDUCTIONS {
            let crit = Criterion::new(kind, reduction, &COUNTS).unwrap();
            check1(&z, |z| crit.loss(z, &target, epoch))
                .unwrap_or_else(|e| panic!("{kind} {reduction:?} {target:?}: {e}"));
        }
    }
}

#[test]
fn cross_entropy_and_label_smoothing() {
    check_kind("ce".parse().unwrap(), 1, true);
    check_kind(
        LossKind::CrossEntropy {
            label_smoothing: 0.1,
        },
        1,
        false,
    );
}

#[test]
fn focal_loss_for_several_gammas() {
    for gamma in [0.5, 1.0, 2.0] {
        check_kind(LossKind::Focal { gamma }, 1, false);
    }
}

#[test]
fn class_balanced_weights() {
    check_kind("cb".parse().unwrap(), 1, true);
}

#[test]
fn ldam_with_and_without_deferred_reweighting() {
    check_kind("ldam".parse().unwrap(), 1, false);
    let drw: LossKind = "ldam-drw".parse().unwrap();
    check_kind(drw, 1, false);
    check_kind(drw, 161, false);
}

#[test]
fn balanced_softmax_and_arb_through_the_criterion() {
    check_kind("bsm".parse().unwrap(), 1, true);
    check_kind(LossKind::BalancedSoftmax { tau: 0.7 }, 1, true);
    check_kind("arb".parse().unwrap(), 1, false);
    check_kind(
        "arb"
            .parse::<LossKind>()
            .map(|k| match k {
                LossKind::Arb { clamp, .. } => LossKind::Arb {
                    counts: "global".parse().unwrap(),
                    clamp,
                },
                other => other,
            })
            .unwrap(),
        1,
        true,
    );
}
