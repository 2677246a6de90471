//! Finite-difference gradient checks (f64) for conv2d, pooling and batch norm, on odd
//! channel counts, non-square inputs and kernels, strides 1 and 2 and paddings 0 to 2.
use arbor_engine::gradcheck::{check, check1, param, SplitMix};
use arbor_engine::{DType, Tensor};

fn rng() -> SplitMix {
    SplitMix::new(7)
}

/// Checks conv2d's gradients w.r.t. input, weight and (optionally) bias.
fn check_conv(
    r: &mut SplitMix,
    x: [usize; 4],
    w: [usize; 4],
    bias: bool,
    stride: (usize, usize),
    padding: (usize, usize),
) {
    let xs = param(r, &x, -1.0, 1.0);
    let ws = param(r, &w, -1.0, 1.0);
    let mut inputs = vec![xs, ws];
    if bias {
        inputs.push(param(r, &[w[0]], -1.0, 1.0));
    }
    check(&inputs, |p| p[0].conv2d(&p[1], p.get(2), stride, padding))
        .unwrap_or_else(|e| panic!("x {x:?} w {w:?} stride {stride:?} pad {padding:?}: {e}"));
}

#[test]
fn conv2d_stride_one() {
    let mut r = rng();
    check_conv(&mut r, [2, 3, 5, 6], [5, 3, 3, 3], true, (1, 1), (1, 1));
    check_conv(&mut r, [2, 3, 5, 6], [5, 3, 3, 3], false, (1, 1), (0, 0));
    check_conv(&mut r, [1, 3, 4, 5], [3, 3, 3, 3], true, (1, 1), (2, 2));
}

#[test]
fn conv2d_stride_two() {
    let mut r = rng();
    check_conv(&mut r, [2, 3, 7, 6], [5, 3, 3, 3], false, (2, 2), (1, 1));
    check_conv(&mut r, [2, 1, 6, 7], [3, 1, 3, 3], true, (2, 2), (0, 0));
    check_conv(&mut r, [1, 3, 5, 5], [1, 3, 3, 3], true, (2, 2), (2, 2));
}

#[test]
fn conv2d_non_square_kernel_stride_and_padding() {
    let mut r = rng();
    check_conv(&mut r, [2, 3, 6, 5], [5, 3, 3, 2], true, (1, 2), (1, 0));
    check_conv(&mut r, [1, 5, 4, 7], [3, 5, 1, 3], false, (2, 1), (0, 2));
    check_conv(&mut r, [2, 3, 3, 8], [1, 3, 2, 5], true, (1, 1), (1, 2));
}

#[test]
fn conv2d_pointwise() {
    // 1x1, stride 1, no padding takes the no-im2col path; with stride 2 it does not.
    let mut r = rng();
    check_conv(&mut r, [2, 5, 3, 4], [3, 5, 1, 1], true, (1, 1), (0, 0));
    check_conv(&mut r, [2, 5, 3, 4], [3, 5, 1, 1], false, (2, 2), (0, 0));
}

#[test]
fn conv2d_gradient_of_one_input_only() {
    // A frozen weight (no grad) must not stop the input gradient, and vice versa.
    let mut r = rng();
    let x = param(&mut r, &[2, 3, 4, 4], -1.0, 1.0);
    let w = Tensor::from_vec(r.vec(2 * 3 * 9, -1.0, 1.0), [2, 3, 3, 3]).unwrap();
    check1(&x, |x| x.conv2d(&w, None, (1, 1), (1, 1))).unwrap();
    let xc = x.detach();
    let wp = w.into_parameter();
    check1(&wp, |w| xc.conv2d(w, None, (2, 1), (1, 0))).unwrap();
}

#[test]
fn max_pool2d_windows() {
    let mut r = rng();
    let x = param(&mut r, &[2, 3, 6, 7], -1.0, 1.0);
    check1(&x, |x| x.max_pool2d((2, 2), (2, 2), (0, 0))).unwrap();
    check1(&x, |x| x.max_pool2d((3, 3), (2, 2), (1, 1))).unwrap();
    check1(&x, |x| x.max_pool2d((3, 2), (1, 2), (1, 0))).unwrap();
}

#[test]
fn avg_pool2d_with_padding() {
    let mut r = rng();
    let x = param(&mut r, &[2, 3, 6, 7], -1.0, 1.0);
    check1(&x, |x| x.avg_pool2d((2, 2), (2, 2), (0, 0))).unwrap();
    check1(&x, |x| x.avg_pool2d((3, 3), (2, 2), (1, 1))).unwrap();
    check1(&x, |x| x.avg_pool2d((2, 3), (2, 1), (1, 1))).unwrap();
}

fn bn_buffers(c: usize) -> (Tensor, Tensor) {
    (
        Tensor::zeros([c], DType::F64),
        Tensor::ones([c], DType::F64),
    )
}

#[test]
fn batch_norm2d_training() {
    let mut r = rng();
    for shape in [[4, 3, 3, 5], [2, 5, 1, 3]] {
        let c = shape[1];
        let x = param(&mut r, &shape, -2.0, 3.0);
        let gamma = param(&mut r, &[c], 0.5, 1.5);
        let beta = param(&mut r, &[c], -0.5, 0.5);
        let (rm, rv) = bn_buffers(c);
        check(&[x, gamma, beta], |p| {
            p[0].batch_norm2d(&p[1], &p[2], &rm, &rv, true, 0.1, 1e-5)
        })
        .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
    }
}

#[test]
fn batch_norm2d_evaluation() {
    let mut r = rng();
    let x = param(&mut r, &[3, 4, 2, 3], -2.0, 2.0);
    let gamma = param(&mut r, &[4], 0.5, 1.5);
    let beta = param(&mut r, &[4], -0.5, 0.5);
    let rm = Tensor::from_vec(r.vec(4, -0.5, 0.5), [4]).unwrap();
    let rv = Tensor::from_vec(r.vec(4, 0.5, 2.0), [4]).unwrap();
    check(&[x, gamma, beta], |p| {
        p[0].batch_norm2d(&p[1], &p[2], &rm, &rv, false, 0.1, 1e-5)
    })
    .unwrap();
}

#[test]
fn conv_batch_norm_relu_pool_chain() {
    // The ResNet block's order of ops, end to end through the tape.
    let mut r = rng();
    let x = param(&mut r, &[3, 2, 5, 5], -1.0, 1.0);
    let w = param(&mut r, &[3, 2, 3, 3], -1.0, 1.0);
    let gamma = param(&mut r, &[3], 0.5, 1.5);
    let beta = param(&mut r, &[3], -0.5, 0.5);
    let (rm, rv) = bn_buffers(3);
    check(&[x, w, gamma, beta], |p| {
        p[0].conv2d(&p[1], None, (1, 1), (1, 1))?
            .batch_norm2d(&p[2], &p[3], &rm, &rv, true, 0.1, 1e-5)?
            .relu()?
            .avg_pool2d((2, 2), (2, 2), (0, 0))
    })
    .unwrap();
}
