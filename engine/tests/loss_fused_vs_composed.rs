//! The fused ARB-Loss against the same loss composed from the engine's primitive ops
//! (clamp, index_select, add, logsumexp, gather, mul, sum, mean), forward and gradient:
//! within 1e-6 relative in f32 and 1e-12 in f64. Vectors (per-row losses, gradients) are
//! compared relative to their largest entry: in f32 the composed form's `lse_i - u_iy` and
//! `exp(u - lse)` carry the rounding of `lse` (`ulp(10) ~ 1e-6`), so a single small entry
//! can differ by more than 1e-6 of itself; the fused kernel works these out in f64.
//!
//! The composed form never masks an absent class with a large negative number: it keeps
//! only the classes with `n_j > 0` (index_select), so absent classes' gradients come out
//! as exact zeros from index_select's backward.
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{arb_loss, arb_spec, batch_counts, ArbOptions, Reduction, Target};
use arbor_engine::{DType, Result, Tensor};

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-6,
        DType::F64 => 1e-12,
    }
}

fn logits(rng: &mut SplitMix, b: usize, c: usize, range: f64, dtype: DType) -> Tensor {
    Tensor::from_vec(rng.vec(b * c, -range, range), [b, c])
        .and_then(|t| t.to_dtype(dtype))
        .unwrap()
        .into_parameter()
}

fn labels(rng: &mut SplitMix, b: usize, classes: &[usize]) -> Vec<usize> {
    (0..b)
        .map(|_| classes[rng.next_u64() as usize % classes.len()])
        .collect()
}

fn global_counts(rng: &mut SplitMix, c: usize) -> Vec<f64> {
    (0..c).map(|_| (rng.uniform(1.0, 500.0)).floor()).collect()
}

/// Random probability rows, zero on classes with `n_j = 0`.
fn soft_rows(rng: &mut SplitMix, b: usize, counts: &[f64], dtype: DType) -> Tensor {
    let c = counts.len();
    let mut v = rng.vec(b * c, 0.0, 1.0);
    for row in v.chunks_mut(c) {
        for (x, &n) in row.iter_mut().zip(counts) {
            if n == 0.0 {
                *x = 0.0;
            }
        }
        let s: f64 = row.iter().sum();
        row.iter_mut().for_each(|x| *x /= s);
    }
    Tensor::from_vec(v, [b, c])
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Per-row ARB losses `[B]` from primitives, over the classes present in `counts`.
fn composed_rows(z: &Tensor, target: &Target, counts: &[f64], clamp: bool) -> Result<Tensor> {
    let (b, dt) = (z.dims()[0], z.dtype());
    let present: Vec<usize> = (0..counts.len()).filter(|&j| counts[j] > 0.0).collect();
    let mut pos = vec![usize::MAX; counts.len()];
    for (p, &j) in present.iter().enumerate() {
        pos[j] = p;
    }
    let log_n: Vec<f64> = present.iter().map(|&j| counts[j].ln()).collect();
    let log_n = Tensor::from_vec(log_n, [1, present.len()])?.to_dtype(dt)?;
    let zc = if clamp {
        z.clamp(-30.0, 30.0)?
    } else {
        z.clone()
    };
    let u = zc.index_select(1, &present)?.add(&log_n)?;
    let lse = u.logsumexp(1, false)?;
    let pick = |y: &[usize]| -> Result<Tensor> {
        let idx: Vec<usize> = y.iter().map(|&c| pos[c]).collect();
        u.gather(1, &idx, [b, 1])?.reshape([b])
    };
    match target {
        Target::Hard(y) => lse.sub(&pick(y)?),
        Target::Mixup { a, b: bb, lam } => {
            let ta = pick(a)?.scale(*lam)?;
            let tb = pick(bb)?.scale(1.0 - lam)?;
            lse.sub(&ta.add(&tb)?)
        }
        Target::Soft(t) => lse.sub(&t.index_select(1, &present)?.mul(&u)?.sum(&[1], false)?),
    }
}

fn reduce(rows: Tensor, r: Reduction) -> Result<Tensor> {
    match r {
        Reduction::Mean => rows.mean_all(),
        Reduction::Sum => rows.sum_all(),
        Reduction::None => Ok(rows),
    }
}

/// Backpropagates `loss` (a random upstream for a vector) and returns `dz`.
fn grad_of(loss: &Tensor, z: &Tensor) -> Vec<f64> {
    z.zero_grad();
    if loss.numel() == 1 && loss.rank() == 0 {
        loss.backward().unwrap();
    } else {
        let up: Vec<f64> = (0..loss.numel())
            .map(|i| 0.5 + (i % 7) as f64 / 3.0)
            .collect();
        let up = Tensor::from_vec(up, loss.shape().clone()).unwrap();
        loss.backward_with(&up.to_dtype(loss.dtype()).unwrap())
            .unwrap();
    }
    z.grad().unwrap().to_vec_f64().unwrap()
}

fn assert_close(what: &str, fused: &[f64], composed: &[f64], rel: f64) {
    assert_eq!(fused.len(), composed.len(), "{what}: lengths");
    let scale = composed.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in fused.iter().zip(composed).enumerate() {
        assert!(
            (a - b).abs() <= rel * scale.max(1e-30),
            "{what}[{i}]: fused {a:e}, composed {b:e}"
        );
    }
}

/// Compares value and gradient of fused vs composed; returns the fused gradient.
fn compare(z: &Tensor, target: &Target, counts: &[f64], opts: ArbOptions) -> Vec<f64> {
    let rel = tol(z.dtype());
    // One graph at a time: backward consumes the whole tape.
    let fused = arb_loss(z, target, counts, &opts).unwrap();
    let (fv, fg) = (fused.to_vec_f64().unwrap(), grad_of(&fused, z));
    let composed = composed_rows(z, target, counts, opts.clamp).unwrap();
    let composed = reduce(composed, opts.reduction).unwrap();
    assert_eq!(fused.shape(), composed.shape());
    let (cv, cg) = (composed.to_vec_f64().unwrap(), grad_of(&composed, z));
    assert_close("loss", &fv, &cv, rel);
    assert_close("dL/dz", &fg, &cg, rel);
    fg
}

const BOTH: [DType; 2] = [DType::F32, DType::F64];
const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

#[test]
fn hard_targets_global_counts_every_reduction() {
    for dt in BOTH {
        for reduction in REDUCTIONS {
            let mut r = SplitMix::new(1);
            let z = logits(&mut r, 37, 11, 4.0, dt);
            let n = global_counts(&mut r, 11);
            let y = labels(&mut r, 37, &(0..11).collect::<Vec<_>>());
            let opts = ArbOptions {
                reduction,
                ..Default::default()
            };
            compare(&z, &Target::Hard(y), &n, opts);
        }
    }
}

#[test]
fn batch_counts_leave_absent_classes_without_gradient() {
    for dt in BOTH {
        let mut r = SplitMix::new(2);
        let (b, c) = (24, 20);
        let z = logits(&mut r, b, c, 4.0, dt);
        let y = labels(&mut r, b, &[0, 3, 4, 9, 17]);
        let n = batch_counts(&y, c);
        let g = compare(&z, &Target::Hard(y.clone()), &n, ArbOptions::default());
        for j in (0..c).filter(|&j| n[j] == 0.0) {
            assert!(
                (0..b).all(|i| g[i * c + j] == 0.0),
                "absent class {j} got a gradient"
            );
        }
        assert!((0..b).any(|i| g[i * c + 3] != 0.0));
    }
}

#[test]
fn mixup_with_batch_and_global_counts() {
    for dt in BOTH {
        let mut r = SplitMix::new(3);
        let (b, c) = (32, 10);
        let z = logits(&mut r, b, c, 5.0, dt);
        let a = labels(&mut r, b, &[0, 1, 2, 5, 7]);
        let mut perm: Vec<usize> = (0..b).collect();
        perm.rotate_left(5);
        let bb: Vec<usize> = perm.iter().map(|&i| a[i]).collect();
        let target = Target::Mixup {
            a: a.clone(),
            b: bb,
            lam: 0.3,
        };
        compare(&z, &target, &batch_counts(&a, c), ArbOptions::default());
        compare(
            &z,
            &target,
            &global_counts(&mut r, c),
            ArbOptions::default(),
        );
    }
}

#[test]
fn soft_targets_with_global_and_sparse_counts() {
    for dt in BOTH {
        for reduction in REDUCTIONS {
            let mut r = SplitMix::new(4);
            let (b, c) = (16, 9);
            let z = logits(&mut r, b, c, 3.0, dt);
            let mut n = global_counts(&mut r, c);
            compare(
                &z,
                &Target::Soft(soft_rows(&mut r, b, &n, dt)),
                &n,
                ArbOptions {
                    reduction,
                    ..Default::default()
                },
            );
            n[2] = 0.0;
            n[6] = 0.0;
            let g = compare(
                &z,
                &Target::Soft(soft_rows(&mut r, b, &n, dt)),
                &n,
                ArbOptions {
                    reduction,
                    ..Default::default()
                },
            );
            assert!((0..b).all(|i| g[i * c + 2] == 0.0 && g[i * c + 6] == 0.0));
        }
    }
}

#[test]
fn clamp_blocks_the_gradient_beyond_thirty() {
    for dt in BOTH {
        let mut r = SplitMix::new(5);
        let (b, c) = (12, 8);
        // Moderate logits with a third pushed beyond the clamp, and a few exactly on it
        // (those still pass a gradient, as PyTorch's clamp does).
        let mut zv = r.vec(b * c, -5.0, 5.0);
        for (i, v) in zv.iter_mut().enumerate() {
            match i % 6 {
                0 => *v = r.uniform(30.5, 60.0),
                1 => *v = -r.uniform(30.5, 60.0),
                _ if i % 23 == 2 => *v = 30.0,
                _ if i % 23 == 3 => *v = -30.0,
                _ => {}
            }
        }
        let z = Tensor::from_vec(zv.clone(), [b, c]).unwrap();
        let z = z.to_dtype(dt).unwrap().into_parameter();
        let n = global_counts(&mut r, c);
        let y = labels(&mut r, b, &(0..c).collect::<Vec<_>>());
        let g = compare(&z, &Target::Hard(y.clone()), &n, ArbOptions::default());
        for (v, gv) in zv.iter().zip(&g) {
            if v.abs() > 30.0 {
                assert_eq!(*gv, 0.0, "logit {v} beyond the clamp got gradient {gv}");
            }
        }
        assert!(zv
            .iter()
            .zip(&g)
            .any(|(v, gv)| v.abs() == 30.0 && *gv != 0.0));
        // Without the clamp the same logits do get gradients. (Compared in f64 only: at
        // |u| ~ 60 the f32 composed form rounds `exp(u - lse)` with ulp(60) ~ 4e-6.)
        let opts = ArbOptions {
            clamp: false,
            ..Default::default()
        };
        let g = if dt == DType::F64 {
            compare(&z, &Target::Hard(y), &n, opts)
        } else {
            grad_of(&arb_loss(&z, &Target::Hard(y), &n, &opts).unwrap(), &z)
        };
        assert!(zv
            .iter()
            .zip(&g)
            .any(|(v, gv)| v.abs() > 30.0 && *gv != 0.0));
    }
}

#[test]
fn single_row_and_two_classes() {
    for dt in BOTH {
        let mut r = SplitMix::new(6);
        let z = logits(&mut r, 1, 7, 4.0, dt);
        compare(
            &z,
            &Target::Hard(vec![4]),
            &global_counts(&mut r, 7),
            ArbOptions::default(),
        );
        compare(
            &z,
            &Target::Hard(vec![4]),
            &batch_counts(&[4], 7),
            ArbOptions::default(),
        );
        let z = logits(&mut r, 9, 2, 4.0, dt);
        let y = labels(&mut r, 9, &[0, 1]);
        compare(
            &z,
            &Target::Hard(y.clone()),
            &[5000.0, 50.0],
            ArbOptions::default(),
        );
        compare(
            &z,
            &Target::Hard(y.clone()),
            &batch_counts(&y, 2),
            ArbOptions::default(),
        );
    }
}

#[test]
fn inaturalist_width_8142_classes() {
    let c = 8142;
    for dt in BOTH {
        for reduction in [Reduction::Mean, Reduction::None] {
            let mut r = SplitMix::new(7);
            let b = 6;
            let z = logits(&mut r, b, c, 4.0, dt);
            let n = global_counts(&mut r, c);
            let y = labels(&mut r, b, &(0..c).collect::<Vec<_>>());
            compare(
                &z,
                &Target::Hard(y.clone()),
                &n,
                ArbOptions {
                    reduction,
                    ..Default::default()
                },
            );
            compare(
                &z,
                &Target::Hard(y.clone()),
                &batch_counts(&y, c),
                ArbOptions {
                    reduction,
                    ..Default::default()
                },
            );
        }
    }
}

#[test]
fn large_batch_takes_the_parallel_path() {
    for dt in BOTH {
        let mut r = SplitMix::new(8);
        let (b, c) = (300, 200);
        let z = logits(&mut r, b, c, 6.0, dt);
        let y = labels(&mut r, b, &(0..c).step_by(3).collect::<Vec<_>>());
        compare(
            &z,
            &Target::Hard(y.clone()),
            &batch_counts(&y, c),
            ArbOptions::default(),
        );
    }
}

#[test]
fn saved_rows_are_p_minus_t_and_scale_to_the_gradient() {
    let mut r = SplitMix::new(9);
    let (b, c) = (10, 6);
    let z = logits(&mut r, b, c, 3.0, DType::F64);
    let n = global_counts(&mut r, c);
    let y = labels(&mut r, b, &(0..c).collect::<Vec<_>>());
    let target = Target::Hard(y.clone());
    let arb = arb_spec(&n, c, &ArbOptions::default()).unwrap();
    let (loss, rows) = z.fused_loss_with_grad(&arb, &target).unwrap();
    let rows = rows.to_vec_f64().unwrap();
    // p - t from the definition, in f64.
    let zv = z.to_vec_f64().unwrap();
    for i in 0..b {
        let w: Vec<f64> = (0..c).map(|j| n[j] * zv[i * c + j].exp()).collect();
        let s: f64 = w.iter().sum();
        for j in 0..c {
            let want = w[j] / s - if j == y[i] { 1.0 } else { 0.0 };
            assert!((rows[i * c + j] - want).abs() < 1e-14, "[{i}, {j}]");
        }
    }
    let g = grad_of(&loss, &z);
    assert_close(
        "dL/dz = rows / B",
        &g,
        &rows.iter().map(|v| v / b as f64).collect::<Vec<_>>(),
        1e-15,
    );
}
