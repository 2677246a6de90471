//! Identities between the losses, and each loss against its textbook formula written out
//! naively in f64 in this file (no engine ops): the reference's direct-exp ARB form, focal,
//! class-balanced, LDAM(-DRW), label smoothing and logit adjustment.
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{arb_loss, ArbOptions, FusedLoss, Reduction, Target};
use arbor_engine::{DType, Tensor};
use arbor_models::loss::{CountMode, Criterion, LossKind};

const COUNTS: [f64; 6] = [900.0, 300.0, 80.0, 25.0, 6.0, 2.0];

fn logits(seed: u64, b: usize, c: usize, range: f64, dtype: DType) -> Tensor {
    let mut r = SplitMix::new(seed);
    Tensor::from_vec(r.vec(b * c, -range, range), [b, c])
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .into_parameter()
}

fn labels(b: usize, c: usize) -> Vec<usize> {
    (0..b).map(|i| (i * 5 + 2) % c).collect()
}

/// The loss's values and `dL/dz` (a vector loss is differentiated with all-ones upstream).
fn value_and_grad(z: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> (Vec<f64>, Vec<f64>) {
    z.zero_grad();
    let l = f(z);
    let v = l.to_vec_f64().unwrap();
    l.sum_all().unwrap().backward().unwrap();
    (v, z.grad().unwrap().to_vec_f64().unwrap())
}

fn assert_all_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * y.abs().max(1.0),
            "{what}[{i}]: {x:e} vs {y:e}"
        );
    }
}

fn crit(kind: LossKind, reduction: Reduction) -> Criterion {
    Criterion::new(kind, reduction, &COUNTS).unwrap()
}

fn log_softmax_row(u: &[f64]) -> Vec<f64> {
    let m = u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + u.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    u.iter().map(|v| v - lse).collect()
}

#[test]
fn stable_form_matches_the_references_direct_exp_form() {
    let (b, c) = (40, 6);
    let mut counts = COUNTS;
    counts[3] = 0.0; // a class no label uses: its term vanishes in both forms
    let y: Vec<usize> = labels(b, c)
        .into_iter()
        .map(|y| if y == 3 { 1 } else { y })
        .collect();
    for dt in [DType::F64, DType::F32] {
        let z = logits(21, b, c, 30.0, dt);
        let opts = ArbOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        let got = arb_loss(&z, &Target::Hard(y.clone()), &counts, &opts).unwrap();
        let got = got.to_vec_f64().unwrap();
        let zv = z.to_vec_f64().unwrap();
        let direct: Vec<f64> = (0..b)
            .map(|i| {
                let row = &zv[i * c..(i + 1) * c];
                let denom: f64 = (0..c)
                    .map(|j| counts[j] / counts[y[i]] * row[j].exp())
                    .sum();
                -(row[y[i]].exp() / denom).ln()
            })
            .collect();
        let tol = if dt == DType::F64 { 1e-12 } else { 2e-6 };
        assert_all_close("direct vs stable", &got, &direct, tol);
    }
}

#[test]
fn arb_with_global_counts_is_balanced_softmax_with_tau_one() {
    let z = logits(22, 16, 6, 8.0, DType::F64);
    let target = Target::Hard(labels(16, 6));
    let arb = crit(
        LossKind::Arb {
            counts: CountMode::Global,
            clamp: true,
        },
        Reduction::Mean,
    );
    let bsm = crit(LossKind::BalancedSoftmax { tau: 1.0 }, Reduction::Mean);
    let a = value_and_grad(&z, |z| arb.loss(z, &target, 1).unwrap());
    let b = value_and_grad(&z, |z| bsm.loss(z, &target, 1).unwrap());
    assert_all_close("value", &a.0, &b.0, 1e-12);
    assert_all_close("grad", &a.1, &b.1, 1e-12);
}

#[test]
fn arb_with_equal_counts_is_cross_entropy() {
    for dt in [DType::F32, DType::F64] {
        let z = logits(23, 16, 6, 8.0, dt);
        let target = Target::Hard(labels(16, 6));
        let ce = crit("ce".parse().unwrap(), Reduction::Mean);
        let a = value_and_grad(&z, |z| {
            arb_loss(z, &target, &[7.0; 6], &ArbOptions::default()).unwrap()
        });
        let b = value_and_grad(&z, |z| ce.loss(z, &target, 1).unwrap());
        let tol = if dt == DType::F64 { 1e-12 } else { 1e-6 };
        assert_all_close("value", &a.0, &b.0, tol);
        assert_all_close("grad", &a.1, &b.1, tol);
    }
}

#[test]
fn focal_with_gamma_zero_and_ldam_without_margins_are_cross_entropy() {
    let z = logits(24, 12, 6, 4.0, DType::F64);
    let target = Target::Hard(labels(12, 6));
    let ce = value_and_grad(&z, |z| {
        crit("ce".parse().unwrap(), Reduction::Mean)
            .loss(z, &target, 1)
            .unwrap()
    });
    let focal = crit(LossKind::Focal { gamma: 0.0 }, Reduction::Mean);
    let f = value_and_grad(&z, |z| focal.loss(z, &target, 1).unwrap());
    assert_all_close("focal value", &f.0, &ce.0, 1e-12);
    assert_all_close("focal grad", &f.1, &ce.1, 1e-12);
    let ldam0 = FusedLoss {
        margins: vec![0.0; 6],
        scale: 1.0,
        ..FusedLoss::cross_entropy("ldam", Reduction::Mean)
    };
    let l = value_and_grad(&z, |z| z.fused_loss(&ldam0, &target).unwrap());
    assert_all_close("ldam value", &l.0, &ce.0, 1e-12);
    assert_all_close("ldam grad", &l.1, &ce.1, 1e-12);
}

/// Per-row losses of each baseline written out from its paper's formula.
fn naive_rows(kind: &str, z: &[f64], y: &[usize], c: usize) -> Vec<f64> {
    let n = &COUNTS;
    let rows = z.chunks(c).zip(y);
    match kind {
        "focal2" => rows
            .map(|(u, &t)| {
                let lp = log_softmax_row(u)[t];
                -(1.0 - lp.exp()).powi(2) * lp
            })
            .collect(),
        "ldam" => {
            let raw: Vec<f64> = n.iter().map(|v| 1.0 / v.sqrt().sqrt()).collect();
            let top = raw.iter().copied().fold(0.0, f64::max);
            rows.map(|(u, &t)| {
                let shifted: Vec<f64> = (0..c)
                    .map(|j| 30.0 * (u[j] - if j == t { 0.5 * raw[j] / top } else { 0.0 }))
                    .collect();
                -log_softmax_row(&shifted)[t]
            })
            .collect()
        }
        "bsm0.5" => rows
            .map(|(u, &t)| {
                let adj: Vec<f64> = (0..c).map(|j| u[j] + 0.5 * n[j].ln()).collect();
                -log_softmax_row(&adj)[t]
            })
            .collect(),
        "smooth0.2" => rows
            .map(|(u, &t)| {
                let lp = log_softmax_row(u);
                (0..c)
                    .map(|j| -lp[j] * (0.2 / c as f64 + if j == t { 0.8 } else { 0.0 }))
                    .sum()
            })
            .collect(),
        _ => unreachable!(),
    }
}

fn class_balanced(beta: f64) -> Vec<f64> {
    let raw: Vec<f64> = COUNTS
        .iter()
        .map(|&n| (1.0 - beta) / (1.0 - beta.powf(n)))
        .collect();
    let s: f64 = raw.iter().sum();
    raw.iter().map(|w| w * COUNTS.len() as f64 / s).collect()
}

#[test]
fn baselines_match_their_formulas() {
    let (b, c) = (20, 6);
    let z = logits(25, b, c, 2.0, DType::F64);
    let zv = z.to_vec_f64().unwrap();
    let y = labels(b, c);
    let target = Target::Hard(y.clone());
    let none = |kind: LossKind| crit(kind, Reduction::None).loss(&z, &target, 1).unwrap();
    let cases = [
        ("focal2", LossKind::Focal { gamma: 2.0 }),
        ("ldam", "ldam".parse().unwrap()),
        ("bsm0.5", LossKind::BalancedSoftmax { tau: 0.5 }),
        (
            "smooth0.2",
            LossKind::CrossEntropy {
                label_smoothing: 0.2,
            },
        ),
    ];
    for (name, kind) in cases {
        let got = none(kind).to_vec_f64().unwrap();
        assert_all_close(name, &got, &naive_rows(name, &zv, &y, c), 1e-12);
    }
    // Class-balanced: PyTorch's weighted mean sum_i w_i L_i / sum_i w_i.
    let w = class_balanced(0.9999);
    let ce: Vec<f64> = zv
        .chunks(c)
        .zip(&y)
        .map(|(u, &t)| -log_softmax_row(u)[t])
        .collect();
    let want = y.iter().zip(&ce).map(|(&t, l)| w[t] * l).sum::<f64>()
        / y.iter().map(|&t| w[t]).sum::<f64>();
    let got = crit("cb".parse().unwrap(), Reduction::Mean)
        .loss(&z, &target, 1)
        .unwrap();
    assert_all_close("cb", &[got.item().unwrap()], &[want], 1e-12);
    // LDAM-DRW: plain LDAM up to epoch 160, class-balanced LDAM after it.
    let drw = crit("ldam-drw".parse().unwrap(), Reduction::Mean);
    assert!(drw.weights_for_epoch(160).is_none());
    assert_all_close(
        "drw weights",
        drw.weights_for_epoch(161).unwrap(),
        &w,
        1e-12,
    );
    let ldam = naive_rows("ldam", &zv, &y, c);
    let plain = ldam.iter().sum::<f64>() / b as f64;
    let weighted = y.iter().zip(&ldam).map(|(&t, l)| w[t] * l).sum::<f64>()
        / y.iter().map(|&t| w[t]).sum::<f64>();
    let at = |epoch| drw.loss(&z, &target, epoch).unwrap().item().unwrap();
    assert_all_close("drw before", &[at(160)], &[plain], 1e-12);
    assert_all_close("drw after", &[at(161)], &[weighted], 1e-12);
    arbor_engine::tape::clear();
}

#[test]
fn mixup_is_the_lam_combination_of_two_hard_losses() {
    let (b, c) = (10, 6);
    let z = logits(26, b, c, 2.0, DType::F64);
    let a = labels(b, c);
    let partner: Vec<usize> = (0..b).map(|i| (i * 7 + 1) % c).collect();
    let lam = 0.3;
    let mix = Target::Mixup {
        a: a.clone(),
        b: partner.clone(),
        lam,
    };
    for name in LossKind::NAMES {
        let kind: LossKind = name.parse().unwrap();
        for reduction in [Reduction::Mean, Reduction::None] {
            let cr = crit(kind, reduction);
            // ARB with batch counts takes them from `a`; give the hard halves the same.
            let kind_global = match kind {
                LossKind::Arb { clamp, .. } => LossKind::Arb {
                    counts: CountMode::Global,
                    clamp,
                },
                k => k,
            };
            let spec_of = |t: &Target| {
                let mut s = crit(kind_global, reduction).spec(t, 161).unwrap();
                s.offsets = cr.spec(&mix, 161).unwrap().offsets;
                s
            };
            let m = value_and_grad(&z, |z| cr.loss(z, &mix, 161).unwrap());
            let ha = value_and_grad(&z, |z| {
                z.fused_loss(&spec_of(&Target::Hard(a.clone())), &Target::Hard(a.clone()))
                    .unwrap()
            });
            let hb = value_and_grad(&z, |z| {
                z.fused_loss(
                    &spec_of(&Target::Hard(partner.clone())),
                    &Target::Hard(partner.clone()),
                )
                .unwrap()
            });
            let combine = |x: &[f64], y: &[f64]| -> Vec<f64> {
                x.iter()
                    .zip(y)
                    .map(|(p, q)| lam * p + (1.0 - lam) * q)
                    .collect()
            };
            assert_all_close(
                &format!("{name} value"),
                &m.0,
                &combine(&ha.0, &hb.0),
                1e-12,
            );
            assert_all_close(&format!("{name} grad"), &m.1, &combine(&ha.1, &hb.1), 1e-12);
        }
    }
}

#[test]
fn mixup_and_hard_targets_equal_their_soft_rows() {
    let (b, c) = (10, 6);
    let z = logits(27, b, c, 3.0, DType::F64);
    let a = labels(b, c);
    let partner: Vec<usize> = (0..b).map(|i| (i * 7 + 1) % c).collect();
    let lam = 0.6;
    let mut soft = vec![0.0; b * c];
    let mut onehot = vec![0.0; b * c];
    for i in 0..b {
        soft[i * c + a[i]] += lam;
        soft[i * c + partner[i]] += 1.0 - lam;
        onehot[i * c + a[i]] = 1.0;
    }
    let soft = Target::Soft(Tensor::from_vec(soft, [b, c]).unwrap());
    let onehot = Target::Soft(Tensor::from_vec(onehot, [b, c]).unwrap());
    let mix = Target::Mixup {
        a: a.clone(),
        b: partner,
        lam,
    };
    // cb's soft rows follow PyTorch (mean over rows, not over weights): compare sums.
    for (name, reduction) in [
        ("ce", Reduction::Mean),
        ("bsm", Reduction::Mean),
        ("cb", Reduction::Sum),
    ] {
        let cr = crit(name.parse().unwrap(), reduction);
        for (x, y) in [(&mix, &soft), (&Target::Hard(a.clone()), &onehot)] {
            let p = value_and_grad(&z, |z| cr.loss(z, x, 1).unwrap());
            let q = value_and_grad(&z, |z| cr.loss(z, y, 1).unwrap());
            assert_all_close(&format!("{name} value"), &p.0, &q.0, 1e-12);
            assert_all_close(&format!("{name} grad"), &p.1, &q.1, 1e-12);
        }
    }
    let opts = ArbOptions::default();
    let p = value_and_grad(&z, |z| arb_loss(z, &mix, &COUNTS, &opts).unwrap());
    let q = value_and_grad(&z, |z| arb_loss(z, &soft, &COUNTS, &opts).unwrap());
    assert_all_close("arb value", &p.0, &q.0, 1e-12);
    assert_all_close("arb grad", &p.1, &q.1, 1e-12);
}
