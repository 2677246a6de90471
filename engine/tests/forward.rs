//! Forward values against independent expectations (hand computation or f64 closed forms).
use arbor_engine::{DType, Tensor};

fn v(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

#[test]
fn matmul_matches_hand_product() {
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let b = Tensor::from_slice(&[7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0], [3, 2]).unwrap();
    assert_eq!(v(&a.matmul(&b).unwrap()), vec![58.0, 64.0, 139.0, 154.0]);
}

#[test]
fn large_f32_ops_agree_with_f64_closed_forms() {
    // Big enough to take the parallel and SIMD paths.
    let n = 100_003;
    let xs: Vec<f32> = (0..n)
        .map(|i| ((i * 37) % 1000) as f32 / 100.0 - 5.0)
        .collect();
    let x = Tensor::from_slice(&xs, [n]).unwrap();
    let e = x.exp().unwrap().to_vec::<f32>().unwrap();
    for (i, (&got, &xi)) in e.iter().zip(&xs).enumerate() {
        let want = (xi as f64).exp();
        assert!(((got as f64 - want) / want).abs() < 3e-7, "exp at {i}");
    }
    let s = x.sum_all().unwrap().item().unwrap();
    let want: f64 = xs.iter().map(|&v| v as f64).sum();
    assert!(
        (s - want).abs() < 1e-3 * want.abs().max(1.0),
        "{s} vs {want}"
    );
    let r = x.relu().unwrap().to_vec::<f32>().unwrap();
    assert!(r.iter().zip(&xs).all(|(&r, &x)| r == x.max(0.0)));
}

#[test]
fn softmax_rows_sum_to_one_and_match_definition() {
    let x = Tensor::from_slice(&[1.0f64, 2.0, 3.0, -1.0, 0.0, 1000.0], [2, 3]).unwrap();
    let s = v(&x.softmax().unwrap());
    let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).sum();
    assert!((s[0] - 1.0f64.exp() / z).abs() < 1e-15);
    assert!((s[5] - 1.0).abs() < 1e-15 && s[3] == 0.0);
    let ls = v(&x.log_softmax().unwrap());
    assert!((ls[2] - (3.0 - z.ln())).abs() < 1e-14);
}

#[test]
fn broadcasting_matches_numpy_rules() {
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0], [3, 1]).unwrap();
    let b = Tensor::from_slice(&[10.0f32, 20.0], [2]).unwrap();
    assert_eq!(
        v(&a.add(&b).unwrap()),
        vec![11.0, 21.0, 12.0, 22.0, 13.0, 23.0]
    );
    let big = Tensor::ones([64, 32, 40], DType::F32);
    let bias = Tensor::from_vec((0..32).map(|i| i as f32).collect::<Vec<_>>(), [32, 1]).unwrap();
    let out = v(&big.add(&bias).unwrap());
    assert_eq!(out[40 * 5 + 7], 6.0);
    assert_eq!(out[32 * 40 * 63 + 40 * 31], 32.0);
}

#[test]
fn max_and_logsumexp_values() {
    let x = Tensor::from_slice(&[1.0f64, 5.0, 3.0, 2.0, 2.0, 0.0], [2, 3]).unwrap();
    assert_eq!(v(&x.max(1, false).unwrap()), vec![5.0, 2.0]);
    assert_eq!(v(&x.max(0, false).unwrap()), vec![2.0, 5.0, 3.0]);
    let lse = v(&x.logsumexp(1, false).unwrap());
    assert!((lse[0] - (1f64.exp() + 5f64.exp() + 3f64.exp()).ln()).abs() < 1e-14);
}
