//! `--analyze`'s numbers against independent naive computations: the attraction–repulsion
//! matrix per class pair, NC1–NC4 on an ideal collapse and on random features.
use arbor_engine::Tensor;
use arbor_models::analysis::collapse::{nc1, FeatureStats, NearestMean};
use arbor_models::analysis::matrix::{batch_matrix, memberships, MatrixAccumulator};
use arbor_models::loss::GradientBalance;
use nalgebra::DMatrix;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// `||sum_b w_bj g_bi h_b||` for every pair, by summing the vectors themselves.
fn naive_matrix(h: &[f32], g: &[f32], members: &[Vec<(usize, f64)>], c: usize) -> Vec<f64> {
    let d = h.len() / members.len();
    let mut m = vec![0.0; c * c];
    for i in 0..c {
        for j in 0..c {
            let mut v = vec![0.0f64; d];
            for (b, mem) in members.iter().enumerate() {
                for &(k, w) in mem {
                    if k == j {
                        for (t, x) in v.iter_mut().enumerate() {
                            *x += w * g[b * c + i] as f64 * h[b * d + t] as f64;
                        }
                    }
                }
            }
            m[i * c + j] = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        }
    }
    m
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{k}]: {x} vs {y}"
        );
    }
}

#[test]
fn batch_matrix_matches_the_per_pair_sum_and_the_engine_diagnostic() {
    let mut rng = StdRng::seed_from_u64(7);
    let (b, d, c) = (40, 12, 6);
    let h = random(&mut rng, b * d);
    let g = random(&mut rng, b * c);
    // Class 5 absent: its column must be zero.
    let labels: Vec<usize> = (0..b).map(|_| rng.gen_range(0..5)).collect();
    let hard = memberships(&labels, None);
    let fast = batch_matrix(&h, &g, &hard, c).unwrap();
    assert_close(&fast, &naive_matrix(&h, &g, &hard, c), 1e-9, "hard");
    assert!((0..c).all(|i| fast[i * c + 5] == 0.0));
    let engine = GradientBalance::compute(
        &Tensor::from_vec(h.clone(), vec![b, d]).unwrap(),
        &Tensor::from_vec(g.clone(), vec![b, c]).unwrap(),
        &labels,
    )
    .unwrap();
    assert_close(&fast, &engine.norms, 1e-5, "engine diagnostic");

    let partners: Vec<usize> = (0..b).map(|_| rng.gen_range(0..c)).collect();
    let mixed = memberships(&labels, Some((&partners, 0.3)));
    let fast = batch_matrix(&h, &g, &mixed, c).unwrap();
    assert_close(&fast, &naive_matrix(&h, &g, &mixed, c), 1e-9, "mixup");
    assert!(fast
        .iter()
        .zip(&engine.norms)
        .any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn epoch_mean_counts_only_iterations_where_the_row_class_is_present() {
    let mut rng = StdRng::seed_from_u64(3);
    let (b, d, c) = (10, 4, 3);
    let batches: Vec<(Vec<f32>, Vec<f32>, Vec<usize>)> = vec![
        (
            random(&mut rng, b * d),
            random(&mut rng, b * c),
            vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0],
        ),
        // Class 2 absent from the second batch.
        (
            random(&mut rng, b * d),
            random(&mut rng, b * c),
            vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        ),
    ];
    let mut acc = MatrixAccumulator::new(c);
    let mut expect = vec![0.0; c * c];
    let mut present = [0u64; 3];
    for (h, g, y) in &batches {
        let mem = memberships(y, None);
        acc.add(h, g, &mem).unwrap();
        let naive = naive_matrix(h, g, &mem, c);
        for i in 0..c {
            if y.contains(&i) {
                present[i] += 1;
                for j in 0..c {
                    expect[i * c + j] += naive[i * c + j];
                }
            }
        }
    }
    let mean = acc.mean();
    for i in 0..c {
        let want: Vec<f64> = (0..c)
            .map(|j| expect[i * c + j] / present[i] as f64)
            .collect();
        assert_close(&mean[i], &want, 1e-9, &format!("row {i}"));
    }
    assert_eq!(acc.present, vec![2, 2, 1]);
}

/// A simplex ETF of `c` unit vectors in `d >= c - 1` dimensions, randomly rotated.
fn simplex_etf(c: usize, d: usize, rng: &mut StdRng) -> DMatrix<f64> {
    let centred = DMatrix::from_fn(c, c, |i, j| (i == j) as u8 as f64 - 1.0 / c as f64);
    let svd = centred.svd(true, false);
    let u = svd.u.unwrap();
    // Coordinates in the (c - 1)-dimensional sum-zero subspace, then into d dimensions.
    let coords = DMatrix::from_fn(c, c - 1, |i, k| u[(i, k)] * svd.singular_values[k]);
    let rot = DMatrix::from_fn(d, d, |_, _| rng.gen_range(-1.0..1.0))
        .qr()
        .q();
    let embedded = DMatrix::from_fn(c, d, |i, k| if k < c - 1 { coords[(i, k)] } else { 0.0 });
    let m = embedded * rot.transpose();
    let norm = m.row(0).norm();
    m / norm
}

fn stats_of(features: &[Vec<f64>], labels: &[usize], c: usize) -> FeatureStats {
    let d = features[0].len();
    let mut stats = FeatureStats::new(c, d);
    let flat: Vec<f32> = features.iter().flatten().map(|&x| x as f32).collect();
    // Two batches, so the streaming sums are exercised.
    let half = labels.len() / 2;
    stats.add(&flat[..half * d], &labels[..half]).unwrap();
    stats.add(&flat[half * d..], &labels[half..]).unwrap();
    stats
}

fn nc4_of(stats: &FeatureStats, features: &[Vec<f64>], w: &DMatrix<f64>, bias: &[f64]) -> f64 {
    let mut nm = NearestMean::new(stats);
    let flat: Vec<f32> = features.iter().flatten().map(|&x| x as f32).collect();
    let logits: Vec<f32> = features
        .iter()
        .flat_map(|h| {
            (0..w.nrows()).map(move |c| {
                (w.row(c).iter().zip(h).map(|(a, b)| a * b).sum::<f64>() + bias[c]) as f32
            })
        })
        .collect();
    nm.add(&flat, &logits, features.len()).unwrap();
    nm.share().unwrap()
}

#[test]
fn an_ideal_collapse_scores_ideally() {
    let mut rng = StdRng::seed_from_u64(11);
    // d > c (the C x C path of NC1) and d = c - 1 (the d x d path).
    for (c, d) in [(5, 9), (6, 5)] {
        let etf = simplex_etf(c, d, &mut rng);
        let shift: Vec<f64> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let counts: Vec<usize> = (0..c).map(|k| 30 / (k + 1) + 1).collect();
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for (k, &n) in counts.iter().enumerate() {
            for _ in 0..n {
                features.push((0..d).map(|t| etf[(k, t)] + shift[t]).collect::<Vec<_>>());
                labels.push(k);
            }
        }
        let stats = stats_of(&features, &labels, c);
        // The classifier equals the centred means; its bias cancels the global shift.
        let w = etf.clone();
        let bias: Vec<f64> = (0..c)
            .map(|k| -w.row(k).iter().zip(&shift).map(|(a, b)| a * b).sum::<f64>())
            .collect();
        let nc4 = nc4_of(&stats, &features, &w, &bias);
        let m = stats.metrics(&w, Some(nc4));
        let small = |v: Option<f64>, what: &str| {
            let v = v.unwrap_or_else(|| panic!("{what} undefined"));
            assert!(v.abs() < 1e-6, "C={c} d={d}: {what} = {v}");
        };
        small(m.nc1, "NC1");
        small(m.nc2_feature_norm_cv, "NC2 feature norms");
        small(m.nc2_classifier_norm_cv, "NC2 classifier norms");
        small(m.nc2_cos_std, "NC2 cosine std");
        small(m.nc2_cos_etf_gap, "NC2 ETF gap");
        small(m.nc3, "NC3");
        assert_eq!(m.nc4, Some(0.0));
    }
}

/// `tr(Sigma_W Sigma_B^+)/C` from kept features: explicit centring and an SVD pseudo-inverse.
fn naive_nc1(features: &[Vec<f64>], labels: &[usize], c: usize) -> f64 {
    let d = features[0].len();
    let mut means = vec![vec![0.0; d]; c];
    let mut n = vec![0usize; c];
    for (h, &y) in features.iter().zip(labels) {
        n[y] += 1;
        for t in 0..d {
            means[y][t] += h[t];
        }
    }
    for k in 0..c {
        means[k].iter_mut().for_each(|x| *x /= n[k] as f64);
    }
    let centre: Vec<f64> = (0..d)
        .map(|t| means.iter().map(|m| m[t]).sum::<f64>() / c as f64)
        .collect();
    let mut sw = DMatrix::<f64>::zeros(d, d);
    for (h, &y) in features.iter().zip(labels) {
        let v = DMatrix::from_fn(d, 1, |t, _| h[t] - means[y][t]);
        sw += &v * v.transpose();
    }
    sw /= features.len() as f64;
    let mut sb = DMatrix::<f64>::zeros(d, d);
    for m in &means {
        let v = DMatrix::from_fn(d, 1, |t, _| m[t] - centre[t]);
        sb += &v * v.transpose();
    }
    sb /= c as f64;
    let pinv = sb.pseudo_inverse(1e-9).unwrap();
    (sw * pinv).trace() / c as f64
}

#[test]
fn random_features_are_far_from_collapse_and_nc1_matches_a_naive_computation() {
    let mut rng = StdRng::seed_from_u64(5);
    for (c, d) in [(4, 10), (12, 6)] {
        let labels: Vec<usize> = (0..200).map(|i| i % c).collect();
        let features: Vec<Vec<f64>> = labels
            .iter()
            .map(|_| (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        // Random rows of random lengths.
        let scale: Vec<f64> = (0..c).map(|_| rng.gen_range(0.2..2.0)).collect();
        let w = DMatrix::from_fn(c, d, |k, _| scale[k] * rng.gen_range(-1.0..1.0));
        let bias = vec![0.0; c];
        let stats = stats_of(&features, &labels, c);
        let nc4 = nc4_of(&stats, &features, &w, &bias);
        let m = stats.metrics(&w, Some(nc4));
        let nc1_value = m.nc1.unwrap();
        let naive = naive_nc1(&features, &labels, c);
        assert!(
            (nc1_value - naive).abs() < 1e-6 * naive,
            "NC1 {nc1_value} vs naive {naive}"
        );
        let centred = stats.centred_means();
        let direct = nc1(&stats.within_covariance(), &centred).unwrap();
        assert!((direct - naive).abs() < 1e-6 * naive);
        assert!(nc1_value > 1.0, "C={c}: NC1 {nc1_value}");
        assert!(m.nc2_feature_norm_cv.unwrap() > 0.05);
        assert!(m.nc2_classifier_norm_cv.unwrap() > 0.05);
        assert!(m.nc2_cos_std.unwrap() > 0.05);
        assert!(m.nc2_cos_etf_gap.unwrap() > 0.05);
        assert!(m.nc3.unwrap() > 0.1);
        assert!(nc4 > 0.2, "C={c}: NC4 {nc4}");
    }
}

/// The C = 1000 cost (ImageNet-LT shapes: ResNet-50's 2048-d features, batch 1024):
/// `cargo test --release -p arbor-models --test analysis -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand"]
fn cost_at_1000_classes() {
    use std::time::Instant;
    let (c, d, b, n_train) = (1000, 2048, 1024, 115_846usize);
    let mut rng = StdRng::seed_from_u64(1);
    // ImageNet-LT-like labels: class k drawn with weight ~ 1280 * (5/1280)^(k/999).
    let weights: Vec<f64> = (0..c)
        .map(|k| (5.0f64 / 1280.0).powf(k as f64 / 999.0))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut label = || {
        let mut u = rng.gen_range(0.0..total);
        weights
            .iter()
            .position(|w| {
                u -= w;
                u <= 0.0
            })
            .unwrap_or(c - 1)
    };
    let labels: Vec<usize> = (0..b).map(|_| label()).collect();
    let mut rng = StdRng::seed_from_u64(2);
    let h = random(&mut rng, b * d);
    let g = random(&mut rng, b * c);
    let mut acc = MatrixAccumulator::new(c);
    let t = Instant::now();
    acc.add(&h, &g, &memberships(&labels, None)).unwrap();
    let m_batch = t.elapsed().as_secs_f64();
    let mut stats = FeatureStats::new(c, d);
    let t = Instant::now();
    stats.add(&h, &labels).unwrap();
    let s_batch = t.elapsed().as_secs_f64();
    // Every class needs an image for the metrics; the rest of the epoch is extrapolated.
    let all: Vec<usize> = (0..c).collect();
    stats.add(&h[..c * d], &all).unwrap();
    let w = DMatrix::from_fn(c, d, |_, _| rng.gen_range(-1.0..1.0));
    let mut nm = NearestMean::new(&stats);
    let t = Instant::now();
    nm.add(&h, &g, b).unwrap();
    let n_batch = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let m = stats.metrics(&w, nm.share());
    let metrics_s = t.elapsed().as_secs_f64();
    assert!(m.nc1.is_some());
    let batches = n_train.div_ceil(b) as f64;
    println!(
        "C={c} d={d} B={b}: M {m_batch:.3} s/batch ({:.1} s per ImageNet-LT epoch); \
         NC statistics {s_batch:.3} s/batch, nearest-mean {n_batch:.3} s/batch \
         ({:.1} s for both passes over {n_train} images, host side); metrics {metrics_s:.2} s",
        m_batch * batches,
        (s_batch + n_batch) * batches
    );
}
