//! `conv2d_bias_act`, the evaluation-only conv with batch norm folded in: against the
//! composed ops (`conv2d` with its bias, then `relu`) in f32 and f64, and with the
//! weights and bias folded from a batch norm, against `conv2d` then `batch_norm2d` in
//! evaluation; and refused while the tape records a gradient.
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::{no_grad, DType, Error, Tensor};

fn uniform(r: &mut SplitMix, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(r.vec(n, lo, hi), shape.to_vec())
        .and_then(|t| t.to_dtype(dtype))
        .unwrap()
}

fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: folded {x}, composed {y}"
        );
    }
}

/// `(x shape, c_out, stride)`: ResNet-32's first stage and its stride-2 transition, and a
/// small odd shape the direct kernels decline.
const CASES: [([usize; 4], usize, usize); 3] = [
    ([2, 16, 32, 32], 16, 1),
    ([2, 16, 32, 32], 32, 2),
    ([3, 5, 7, 9], 6, 1),
];

#[test]
fn folded_conv_matches_conv_bias_relu() {
    let mut r = SplitMix::new(11);
    for dtype in [DType::F32, DType::F64] {
        for (shape, c_out, s) in CASES {
            let x = uniform(&mut r, &shape, -1.0, 1.0, dtype);
            let w = uniform(&mut r, &[c_out, shape[1], 3, 3], -0.3, 0.3, dtype);
            let b = uniform(&mut r, &[c_out], -0.5, 0.5, dtype);
            for relu in [false, true] {
                let folded = x.conv2d_bias_act(&w, &b, (s, s), (1, 1), relu).unwrap();
                let conv = x.conv2d(&w, Some(&b), (s, s), (1, 1)).unwrap();
                let composed = if relu { conv.relu().unwrap() } else { conv };
                let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
                assert_close(
                    &format!("{dtype:?} {shape:?} relu={relu}"),
                    &folded,
                    &composed,
                    tol,
                );
            }
        }
    }
}

#[test]
fn folding_batch_norm_matches_conv_then_batch_norm_in_evaluation() {
    let mut r = SplitMix::new(12);
    let eps = 1e-5;
    for (shape, c_out, s) in CASES {
        let x = uniform(&mut r, &shape, -1.0, 1.0, DType::F32);
        let w = uniform(&mut r, &[c_out, shape[1], 3, 3], -0.3, 0.3, DType::F32);
        let gamma = uniform(&mut r, &[c_out], 0.5, 1.5, DType::F32);
        let beta = uniform(&mut r, &[c_out], -0.5, 0.5, DType::F32);
        let mean = uniform(&mut r, &[c_out], -0.5, 0.5, DType::F32);
        let var = uniform(&mut r, &[c_out], 0.2, 2.0, DType::F32);
        let (g, bt, m, v) = (
            gamma.to_vec_f64().unwrap(),
            beta.to_vec_f64().unwrap(),
            mean.to_vec_f64().unwrap(),
            var.to_vec_f64().unwrap(),
        );
        let scale: Vec<f64> = (0..c_out).map(|c| g[c] / (v[c] + eps).sqrt()).collect();
        let per_out = w.numel() / c_out;
        let w_folded: Vec<f64> = (w.to_vec_f64().unwrap().iter().enumerate())
            .map(|(i, &wi)| wi * scale[i / per_out])
            .collect();
        let b_folded: Vec<f64> = (0..c_out).map(|c| bt[c] - m[c] * scale[c]).collect();
        let w_folded = Tensor::from_vec(w_folded, w.dims().to_vec())
            .and_then(|t| t.to_dtype(DType::F32))
            .unwrap();
        let b_folded = Tensor::from_vec(b_folded, [c_out])
            .and_then(|t| t.to_dtype(DType::F32))
            .unwrap();
        let folded = x
            .conv2d_bias_act(&w_folded, &b_folded, (s, s), (1, 1), true)
            .unwrap();
        let conv = x.conv2d(&w, None, (s, s), (1, 1)).unwrap();
        let composed = conv
            .batch_norm2d(&gamma, &beta, &mean, &var, false, 0.1, eps)
            .and_then(|y| y.relu())
            .unwrap();
        // The two sides run different weights through the same fast conv, so their
        // rounding errors do not cancel: Winograd F(4x4, 3x3) (the AVX2 path at 16
        // channels) errs by up to about 6e-5 on these shapes, eight times the direct
        // kernel (`resnet_shapes_within_bound` prints both). A folding mistake (a
        // missed scale, shift or ReLU) is off by 1e-2 or more.
        assert_close(&format!("{shape:?}"), &folded, &composed, 1e-4);
    }
}

#[test]
fn recording_a_gradient_through_it_is_a_clear_error() {
    let mut r = SplitMix::new(13);
    let x = uniform(&mut r, &[1, 2, 4, 4], -1.0, 1.0, DType::F32);
    let w = uniform(&mut r, &[3, 2, 3, 3], -1.0, 1.0, DType::F32).into_parameter();
    let b = uniform(&mut r, &[3], -1.0, 1.0, DType::F32);
    let e = x.conv2d_bias_act(&w, &b, (1, 1), (1, 1), true).unwrap_err();
    assert!(matches!(e, Error::Tape(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("conv2d_bias_act") && msg.contains("no_grad"),
        "{msg}"
    );
    // Without the tape, or with no operand needing a gradient, it runs.
    assert!(no_grad(|| x.conv2d_bias_act(&w, &b, (1, 1), (1, 1), true)).is_ok());
    let w_const = w.detach();
    assert!(x
        .conv2d_bias_act(&w_const, &b, (1, 1), (1, 1), true)
        .is_ok());
}
