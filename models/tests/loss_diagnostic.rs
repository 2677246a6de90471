//! The gradient-balance diagnostic: against a naive per-pair computation, against the
//! classifier weight gradient autodiff computes for a linear head, and its epoch average.
use arbor_engine::gradcheck::{param, SplitMix};
use arbor_engine::ops::loss::{arb_spec, batch_counts, ArbOptions, Reduction, Target};
use arbor_engine::{tape, Tensor};
use arbor_models::loss::diagnostic::class_gradients;
use arbor_models::loss::{Criterion, GradientBalance, GradientBalanceAccumulator};

/// `B` features of width `d`, `C` classes, labels from a subset so some classes are absent.
fn batch(seed: u64, b: usize, d: usize, c: usize) -> (Tensor, Tensor, Tensor, Vec<usize>) {
    let mut r = SplitMix::new(seed);
    let h = param(&mut r, &[b, d], -1.0, 1.0);
    let w = param(&mut r, &[c, d], -0.5, 0.5);
    let bias = param(&mut r, &[c], -0.1, 0.1);
    let y = (0..b)
        .map(|i| [0, 0, 0, 1, 1, 3][i % 6].min(c - 1))
        .collect();
    (h, w, bias, y)
}

#[test]
fn matches_a_naive_per_pair_computation() {
    let (b, d, c) = (14, 3, 5);
    let (h, w, bias, y) = batch(31, b, d, c);
    let z = h.linear(&w, Some(&bias)).unwrap();
    let arb = arb_spec(&batch_counts(&y, c), c, &ArbOptions::default()).unwrap();
    let (_, g) = z
        .fused_loss_with_grad(&arb, &Target::Hard(y.clone()))
        .unwrap();
    tape::clear();
    let m = GradientBalance::compute(&h, &g, &y).unwrap();
    let (hv, gv) = (h.to_vec_f64().unwrap(), g.to_vec_f64().unwrap());
    for cls in 0..c {
        for k in 0..c {
            let mut acc = vec![0.0; d];
            for i in (0..b).filter(|&i| y[i] == k) {
                for t in 0..d {
                    acc[t] += gv[i * c + cls] * hv[i * d + t];
                }
            }
            let want = acc.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!(
                (m.norm(cls, k) - want).abs() < 1e-13,
                "M[{cls}][{k}] = {} vs {want}",
                m.norm(cls, k)
            );
        }
    }
    // Classes 2 and 4 have no samples: no attraction, no repulsion from them, and with
    // batch counts no gradient on their logits, so nothing pushes their classifiers at all.
    for k in [2, 4] {
        assert!((0..c).all(|cls| m.norm(cls, k) == 0.0 && m.norm(k, cls) == 0.0));
    }
    let report = m.per_class();
    assert_eq!(report[0].attraction, m.norm(0, 0));
    assert_eq!(report[0].repulsion, m.norm(0, 1) + m.norm(0, 3));
    assert_eq!(
        report[0].ratio,
        Some(report[0].repulsion / report[0].attraction)
    );
    assert_eq!(report[2].ratio, None);
}

#[test]
fn class_blocks_sum_to_b_times_the_weight_gradient() {
    let (b, d, c) = (12, 4, 4);
    let (h, w, bias, y) = batch(32, b, d, c);
    let counts = [50.0, 20.0, 5.0, 2.0];
    let lam = 0.7;
    let partner: Vec<usize> = (0..b).map(|i| y[(i + 5) % b]).collect();
    let crit = Criterion::new("arb".parse().unwrap(), Reduction::Mean, &counts).unwrap();
    for target in [
        Target::Hard(y.clone()),
        Target::Mixup {
            a: y.clone(),
            b: partner,
            lam,
        },
    ] {
        w.zero_grad();
        let z = h.linear(&w, Some(&bias)).unwrap();
        let (loss, g) = crit.loss_with_grad(&z, &target, 1).unwrap();
        loss.backward().unwrap();
        let dw = w.grad().unwrap().to_vec_f64().unwrap();
        let mut total = vec![0.0; c * d];
        for (_, gk) in class_gradients(&h, &g, &y).unwrap() {
            for (t, v) in total.iter_mut().zip(gk.to_vec_f64().unwrap()) {
                *t += v;
            }
        }
        for (i, (s, dwv)) in total.iter().zip(&dw).enumerate() {
            assert!(
                (s - b as f64 * dwv).abs() < 1e-13,
                "[{}, {}]: {s} vs B * {dwv}",
                i / d,
                i % d
            );
        }
    }
}

#[test]
fn records_nothing_and_averages_over_an_epoch() {
    let (b, d, c) = (12, 3, 4);
    let mut acc = GradientBalanceAccumulator::new(c);
    assert!(acc.mean().is_none());
    let mut seen = Vec::new();
    for seed in 0..3 {
        let (h, w, bias, y) = batch(40 + seed, b, d, c);
        let z = h.linear(&w, Some(&bias)).unwrap();
        let arb = arb_spec(&[9.0, 5.0, 3.0, 1.0], c, &ArbOptions::default()).unwrap();
        let (_, g) = z
            .fused_loss_with_grad(&arb, &Target::Hard(y.clone()))
            .unwrap();
        let before = tape::len();
        let m = GradientBalance::compute(&h, &g, &y).unwrap();
        assert_eq!(tape::len(), before, "the diagnostic recorded tape nodes");
        acc.add(&m).unwrap();
        seen.push(m);
        tape::clear();
    }
    let mean = acc.mean().unwrap();
    for i in 0..c * c {
        let want = seen.iter().map(|m| m.norms[i]).sum::<f64>() / 3.0;
        assert!((mean.norms[i] - want).abs() < 1e-15);
    }
    assert!(acc
        .add(&GradientBalance {
            num_classes: 3,
            norms: vec![0.0; 9]
        })
        .is_err());
    acc.reset();
    assert!(acc.mean().is_none());
}
