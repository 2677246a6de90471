//! Finite-difference gradient checks (f64) for the elementwise, reduction, matmul, shape,
//! indexing and softmax ops, on odd sizes and broadcasting shapes.
use arbor_engine::gradcheck::{check, check1, param, SplitMix};
use arbor_engine::Tensor;

fn rng() -> SplitMix {
    SplitMix::new(42)
}

#[test]
fn binary_ops_with_broadcasting() {
    let mut r = rng();
    let a = param(&mut r, &[3, 1, 5], -1.0, 1.0);
    let b = param(&mut r, &[4, 1], -1.0, 1.0);
    check(&[a.clone(), b.clone()], |x| x[0].add(&x[1])).unwrap();
    check(&[a.clone(), b.clone()], |x| x[0].sub(&x[1])).unwrap();
    check(&[a.clone(), b.clone()], |x| x[0].mul(&x[1])).unwrap();
    let pos = param(&mut r, &[5], 0.5, 2.0);
    check(&[a, pos], |x| x[0].div(&x[1])).unwrap();
}

#[test]
fn unary_ops() {
    let mut r = rng();
    let x = param(&mut r, &[7, 3], -2.0, 2.0);
    check1(&x, |x| x.neg()).unwrap();
    check1(&x, |x| x.exp()).unwrap();
    check1(&x, |x| x.affine(-1.5, 0.25)).unwrap();
    check1(&x, |x| x.relu()).unwrap();
    check1(&x, |x| x.clamp(-0.7, 0.9)).unwrap();
    let p = param(&mut r, &[5, 3], 0.3, 3.0);
    check1(&p, |x| x.log()).unwrap();
    check1(&p, |x| x.sqrt()).unwrap();
    check1(&p, |x| x.powf(2.5)).unwrap();
}

#[test]
fn reductions_over_axes() {
    let mut r = rng();
    let x = param(&mut r, &[3, 4, 5], -2.0, 2.0);
    check1(&x, |x| x.sum(&[1], false)).unwrap();
    check1(&x, |x| x.sum(&[0, 2], true)).unwrap();
    check1(&x, |x| x.mean(&[-1], false)).unwrap();
    check1(&x, |x| x.mean_all()).unwrap();
    check1(&x, |x| x.max(1, false)).unwrap();
    check1(&x, |x| x.max(2, true)).unwrap();
    check1(&x, |x| x.logsumexp(0, false)).unwrap();
    check1(&x, |x| x.logsumexp(-1, true)).unwrap();
}

#[test]
fn matmul_plain_transposed_and_batched() {
    let mut r = rng();
    let a = param(&mut r, &[3, 5], -1.0, 1.0);
    let b = param(&mut r, &[5, 2], -1.0, 1.0);
    check(&[a.clone(), b.clone()], |x| x[0].matmul(&x[1])).unwrap();
    let bt = param(&mut r, &[2, 5], -1.0, 1.0);
    check(&[a.clone(), bt], |x| x[0].matmul_t(&x[1], false, true)).unwrap();
    let at = param(&mut r, &[5, 3], -1.0, 1.0);
    check(&[at, b.clone()], |x| x[0].matmul_t(&x[1], true, false)).unwrap();
    let ba = param(&mut r, &[2, 3, 4], -1.0, 1.0);
    let bb = param(&mut r, &[2, 4, 3], -1.0, 1.0);
    check(&[ba.clone(), bb], |x| x[0].matmul(&x[1])).unwrap();
    let shared = param(&mut r, &[4, 6], -1.0, 1.0);
    check(&[ba, shared], |x| x[0].matmul(&x[1])).unwrap();
}

#[test]
fn linear_layer() {
    let mut r = rng();
    let x = param(&mut r, &[4, 3], -1.0, 1.0);
    let w = param(&mut r, &[5, 3], -1.0, 1.0);
    let b = param(&mut r, &[5], -1.0, 1.0);
    check(&[x, w, b], |p| p[0].linear(&p[1], Some(&p[2]))).unwrap();
}

#[test]
fn shape_and_index_ops() {
    let mut r = rng();
    let x = param(&mut r, &[2, 3, 4], -1.0, 1.0);
    check1(&x, |x| x.reshape([6, 4])?.mul(&x.reshape([6, 4])?)).unwrap();
    check1(&x, |x| x.permute(&[2, 0, 1])).unwrap();
    check1(&x, |x| x.transpose(0, 2)).unwrap();
    check1(&x, |x| x.slice(&[(0, 2, 1), (1, 3, 2), (0, 4, 3)])).unwrap();
    check1(&x, |x| x.index_select(1, &[2, 0, 2])).unwrap();
    check1(&x, |x| {
        x.gather(2, &[3, 0, 1, 1, 2, 2, 0, 0, 3, 1, 1, 2], [2, 3, 2])
    })
    .unwrap();
    let y = param(&mut r, &[2, 2, 4], -1.0, 1.0);
    check(&[x.clone(), y], |x| {
        Tensor::concat(&[x[0].clone(), x[1].clone()], 1)
    })
    .unwrap();
    let nchw = param(&mut r, &[2, 3, 4, 4], -1.0, 1.0);
    check1(&nchw, |x| x.pad_channels(2, 1)).unwrap();
    check1(&nchw, |x| {
        x.slice(&[(0, 2, 1), (0, 3, 1), (0, 4, 2), (0, 4, 2)])
    })
    .unwrap();
    check1(&nchw, |x| x.global_avg_pool2d()).unwrap();
    check1(&nchw, |x| x.broadcast_to([3, 2, 3, 4, 4])).unwrap();
}

#[test]
fn softmax_and_log_softmax() {
    let mut r = rng();
    let x = param(&mut r, &[5, 7], -3.0, 3.0);
    check1(&x, |x| x.softmax()).unwrap();
    check1(&x, |x| x.log_softmax()).unwrap();
}

#[test]
fn the_checker_catches_a_wrong_gradient() {
    // d/dx [detach(x) * x] is x to autodiff but 2x to finite differences.
    let mut r = rng();
    let x = param(&mut r, &[4], 0.5, 1.0);
    let err = check1(&x, |x| x.detach().mul(x)).unwrap_err();
    assert!(err.to_string().contains("finite difference"), "{err}");
}
