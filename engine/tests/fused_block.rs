//! The fused block ops (`add_relu`, `batch_norm2d_relu`): finite-difference gradient
//! checks in f64, and fused against composed (`add` then `relu`, `batch_norm2d` then
//! `relu`) in f32 and f64: values, gradients and the running statistics.
use arbor_engine::gradcheck::{check, param, SplitMix};
use arbor_engine::{no_grad, tape, DType, Tensor};

fn bn_buffers(c: usize) -> (Tensor, Tensor) {
    (
        Tensor::from_vec(vec![0.0; c], [c]).unwrap(),
        Tensor::from_vec(vec![1.0; c], [c]).unwrap(),
    )
}

#[test]
fn add_relu_gradients() {
    let mut r = SplitMix::new(3);
    let a = param(&mut r, &[2, 3, 4, 5], -1.0, 1.0);
    let b = param(&mut r, &[2, 3, 4, 5], -1.0, 1.0);
    check(&[a, b], |p| p[0].add_relu(&p[1])).unwrap();
}

#[test]
fn batch_norm2d_relu_gradients() {
    let mut r = SplitMix::new(5);
    for shape in [[4, 3, 3, 5], [2, 5, 1, 3]] {
        let c = shape[1];
        let x = param(&mut r, &shape, -2.0, 3.0);
        let gamma = param(&mut r, &[c], 0.5, 1.5);
        let beta = param(&mut r, &[c], -0.5, 0.5);
        let (rm, rv) = bn_buffers(c);
        check(&[x, gamma, beta], |p| {
            p[0].batch_norm2d_relu(&p[1], &p[2], &rm, &rv, true, 0.1, 1e-5)
        })
        .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
    }
}

/// Two residual joins in a row, each input used twice: the tape sums the two gradients of
/// `h` and of `y` over one of them, and each join masks its gradient in place (the
/// gradients are fresh, unshared). Finite differences check the result.
#[test]
fn residual_chain_gradients_with_in_place_sums() {
    let mut r = SplitMix::new(21);
    let x = param(&mut r, &[2, 3, 4, 5], -1.0, 1.0);
    let w = param(&mut r, &[2, 3, 4, 5], -1.0, 1.0);
    let v = param(&mut r, &[2, 3, 4, 5], -1.0, 1.0);
    check(&[x, w, v], |p| {
        let h = p[0].scale(0.5)?;
        let y = h.add_relu(&h.mul(&p[1])?)?;
        y.add_relu(&y.mul(&p[2])?)
    })
    .unwrap();
}

/// An upstream gradient the caller still holds is shared, so no backward rule may write
/// over it (nor over a gradient read back with `grad()`).
#[test]
fn held_gradients_are_not_written_in_place() {
    let mut r = SplitMix::new(22);
    let shape = [2, 3, 4, 5];
    let a = leaf(&mut r, &shape, -1.0, 1.0, DType::F64);
    let b = leaf(&mut r, &shape, -1.0, 1.0, DType::F64);
    let dy = leaf(&mut r, &shape, -1.0, 1.0, DType::F64).detach();
    let before = dy.to_vec::<f64>().unwrap();
    let y = a.add_relu(&b).unwrap();
    y.backward_with(&dy).unwrap();
    assert_eq!(
        dy.to_vec::<f64>().unwrap(),
        before,
        "upstream gradient overwritten"
    );
    // `a`'s gradient is held here; a second backward adds a new tensor, not into it.
    let held = a.grad().unwrap();
    let held_values = held.to_vec::<f64>().unwrap();
    a.add_relu(&b).unwrap().backward_with(&dy).unwrap();
    assert_eq!(
        held.to_vec::<f64>().unwrap(),
        held_values,
        "held gradient overwritten"
    );
    let doubled: Vec<f64> = held_values.iter().map(|g| 2.0 * g).collect();
    assert_eq!(a.grad().unwrap().to_vec::<f64>().unwrap(), doubled);
}

/// Leaf parameters of `dtype` with values in `[lo, hi)`.
fn leaf(r: &mut SplitMix, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(r.vec(n, lo, hi), shape.to_vec())
        .and_then(|t| t.to_dtype(dtype))
        .unwrap()
        .into_parameter()
}

fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: fused {x}, composed {y}"
        );
    }
}

/// `f` fused and composed on the same inputs and upstream gradient: outputs and every
/// input's gradient agree.
fn fused_matches_composed(
    inputs: &[Tensor],
    dy: &Tensor,
    fused: impl Fn(&[Tensor]) -> Tensor,
    composed: impl Fn(&[Tensor]) -> Tensor,
    tol: f64,
) {
    let mut results = Vec::new();
    for f in [&fused as &dyn Fn(&[Tensor]) -> Tensor, &composed] {
        inputs.iter().for_each(|t| t.zero_grad());
        let y = f(inputs);
        y.backward_with(dy).unwrap();
        let grads: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.grad().expect("a gradient"))
            .collect();
        results.push((y, grads));
    }
    let ((yf, gf), (yc, gc)) = (&results[0], &results[1]);
    assert_close("y", yf, yc, tol);
    for (i, (a, b)) in gf.iter().zip(gc).enumerate() {
        assert_close(&format!("grad of input {i}"), a, b, tol);
    }
}

#[test]
fn add_relu_matches_add_then_relu() {
    for (dtype, tol) in [(DType::F64, 1e-15), (DType::F32, 1e-7)] {
        let mut r = SplitMix::new(9);
        // Larger than one parallel chunk, so the rayon split is exercised too.
        let shape = [4, 16, 32, 32];
        let a = leaf(&mut r, &shape, -1.0, 1.0, dtype);
        let b = leaf(&mut r, &shape, -1.0, 1.0, dtype);
        let dy = leaf(&mut r, &shape, -1.0, 1.0, dtype);
        fused_matches_composed(
            &[a, b],
            &dy,
            |p| p[0].add_relu(&p[1]).unwrap(),
            |p| p[0].add(&p[1]).unwrap().relu().unwrap(),
            tol,
        );
    }
}

#[test]
fn batch_norm2d_relu_matches_batch_norm_then_relu() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let mut r = SplitMix::new(13);
        let (n, c, h, w) = (8, 6, 7, 9);
        let x = leaf(&mut r, &[n, c, h, w], -2.0, 3.0, dtype);
        let gamma = leaf(&mut r, &[c], 0.5, 1.5, dtype);
        let beta = leaf(&mut r, &[c], -0.5, 0.5, dtype);
        let dy = leaf(&mut r, &[n, c, h, w], -1.0, 1.0, dtype);
        let buffers = || {
            let (m, v) = bn_buffers(c);
            (m.to_dtype(dtype).unwrap(), v.to_dtype(dtype).unwrap())
        };
        let (rm_f, rv_f) = buffers();
        let (rm_c, rv_c) = buffers();
        fused_matches_composed(
            &[x.clone(), gamma.clone(), beta.clone()],
            &dy,
            |p| {
                p[0].batch_norm2d_relu(&p[1], &p[2], &rm_f, &rv_f, true, 0.1, 1e-5)
                    .unwrap()
            },
            |p| {
                p[0].batch_norm2d(&p[1], &p[2], &rm_c, &rv_c, true, 0.1, 1e-5)
                    .unwrap()
                    .relu()
                    .unwrap()
            },
            tol,
        );
        assert_close("running mean", &rm_f, &rm_c, tol);
        assert_close("running var", &rv_f, &rv_c, tol);
        // Evaluation, untaped: the fused eval kernel against the composed ops.
        no_grad(|| {
            let fused = x.batch_norm2d_relu(&gamma, &beta, &rm_f, &rv_f, false, 0.1, 1e-5);
            let composed = x
                .batch_norm2d(&gamma, &beta, &rm_c, &rv_c, false, 0.1, 1e-5)
                .unwrap()
                .relu()
                .unwrap();
            assert_close("eval y", &fused.unwrap(), &composed, tol);
        });
    }
}

/// Each fused op is one node on the tape, its own backward (not the composed ops' two), so
/// the comparisons above really compare two paths.
#[test]
fn fused_ops_record_one_node_each() {
    tape::clear();
    let mut r = SplitMix::new(17);
    let a = param(&mut r, &[2, 3, 2, 2], -1.0, 1.0);
    let b = param(&mut r, &[2, 3, 2, 2], -1.0, 1.0);
    let (gamma, beta) = (
        param(&mut r, &[3], 0.5, 1.5),
        param(&mut r, &[3], -0.5, 0.5),
    );
    let (rm, rv) = bn_buffers(3);
    let y = a.add_relu(&b).unwrap();
    y.batch_norm2d_relu(&gamma, &beta, &rm, &rv, true, 0.1, 1e-5)
        .unwrap();
    let graph = tape::describe();
    assert_eq!(tape::len(), 2, "{graph}");
    assert!(graph.contains("AddReluBackward"), "{graph}");
    assert!(graph.contains("BatchNormReluBackward"), "{graph}");
    tape::clear();
}

#[test]
fn fused_ops_report_bad_arguments_as_errors() {
    let x = Tensor::from_vec(vec![0.0; 24], [2, 3, 2, 2]).unwrap();
    let (rm, rv) = bn_buffers(3);
    let wrong = Tensor::from_vec(vec![1.0; 4], [4]).unwrap();
    let e = x
        .batch_norm2d_relu(&wrong, &rm, &rm, &rv, true, 0.1, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gamma") && e.contains("[3]"), "{e}");
    let y = Tensor::from_vec(vec![0.0; 12], [1, 3, 2, 2]).unwrap();
    let f32x = x.to_dtype(DType::F32).unwrap();
    assert!(f32x.add_relu(&x).is_err(), "mixed dtypes must be an error");
    // Broadcasting shapes take the composed path and still work.
    let s = x.add_relu(&y).unwrap();
    assert_eq!(s.dims(), &[2, 3, 2, 2]);
}
