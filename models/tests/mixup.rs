//! Mixup: lambda's range and distribution, linear mixing with a permutation partner.

use arbor_models::data::{mixup, Batch, DataRng};
use rand::SeedableRng;

fn batch(size: usize, sample_len: usize) -> Batch {
    Batch {
        images: (0..size * sample_len).map(|v| (v as f32).sin()).collect(),
        labels: (0..size as u32).map(|i| i * 3 % 7).collect(),
        indices: (0..size).collect(),
        shape: [size, 1, 1, sample_len],
    }
}

#[test]
fn mixing_is_the_convex_combination_with_the_partner() {
    let original = batch(16, 12);
    for seed in 0..20 {
        let mut mixed = original.clone();
        let mix = mixup(&mut mixed, 1.0, &mut DataRng::seed_from_u64(seed)).unwrap();
        assert!((0.0..=1.0).contains(&mix.lam));
        let mut sorted = mix.partner.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..16).collect::<Vec<_>>(),
            "partner is a permutation"
        );
        assert_eq!(mix.labels_a, original.labels);
        for i in 0..16 {
            let j = mix.partner[i];
            assert_eq!(mix.labels_b[i], original.labels[j]);
            for k in 0..12 {
                let expected = mix.lam * original.images[i * 12 + k]
                    + (1.0 - mix.lam) * original.images[j * 12 + k];
                assert!((mixed.images[i * 12 + k] - expected).abs() < 1e-6);
            }
        }
        assert_eq!(mixed.labels, original.labels, "labels are not touched");
    }
}

#[test]
fn lambda_follows_beta_alpha_alpha() {
    let mut rng = DataRng::seed_from_u64(4);
    let draws = |alpha: f64, rng: &mut DataRng| -> Vec<f32> {
        (0..4000)
            .map(|_| mixup(&mut batch(2, 1), alpha, rng).unwrap().lam)
            .collect()
    };
    // Beta(1, 1) is uniform: mean 1/2, variance 1/12.
    let uniform = draws(1.0, &mut rng);
    let mean = uniform.iter().sum::<f32>() / 4000.0;
    let var = uniform.iter().map(|l| (l - mean).powi(2)).sum::<f32>() / 4000.0;
    assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    assert!((var - 1.0 / 12.0).abs() < 0.01, "variance {var}");
    // Beta(0.2, 0.2) piles up near 0 and 1: variance 1 / (4 * (2*0.2 + 1)) = 0.179.
    let peaked = draws(0.2, &mut rng);
    assert!(peaked.iter().all(|l| (0.0..=1.0).contains(l)));
    let var = peaked.iter().map(|l| (l - 0.5).powi(2)).sum::<f32>() / 4000.0;
    assert!((var - 0.179).abs() < 0.015, "variance {var}");
}

#[test]
fn mixup_is_deterministic_given_the_rng() {
    let run = || {
        let mut b = batch(8, 5);
        let mix = mixup(&mut b, 1.0, &mut DataRng::seed_from_u64(11)).unwrap();
        (b, mix)
    };
    assert_eq!(run(), run());
}

#[test]
fn bad_inputs_are_errors() {
    let mut rng = DataRng::seed_from_u64(0);
    assert!(mixup(&mut batch(4, 3), 0.0, &mut rng).is_err());
    assert!(mixup(&mut batch(4, 3), -1.0, &mut rng).is_err());
    let mut short = batch(4, 3);
    short.images.pop();
    assert!(mixup(&mut short, 1.0, &mut rng).is_err());
}
