//! Every engine op on the CPU and on the GPU (cuda:0), forward and backward through the
//! tape, compared element by element; the fused loss in `cuda_ops/loss.rs`, conv, batch
//! norm, pooling, softmax and SGD in `cuda_ops/nn.rs`, the fused block ops in
//! `cuda_ops/fused.rs`. (One ResNet-8 training step, which needs the models, is the root
//! package's `tests/cuda_resnet_step.rs`.)
//!
//! Each test body is written once and run by [`device_test!`] on both devices, in f32
//! and in f64. Agreement is measured per element as `|gpu - cpu| / max(|cpu|, floor)` with
//! `floor = 1e-3 * max |cpu|` over the tensor (so entries that cancel to nearly zero are
//! judged against the tensor's scale, not their own): at most 1e-5 in f32 (the kernels
//! and the CPU loops sum in different orders) and 1e-9 in f64 (where any larger gap is a
//! logic error, not rounding), unless a test states otherwise.
//!
//! Without a GPU every test prints `SKIPPED: <test>: <reason>` and passes; with a GPU that
//! fails to open, the tests fail.
#![cfg(feature = "cuda")]

use arbor_engine::gradcheck::SplitMix;
use arbor_engine::{DType, Device, Result, Tensor};

/// Largest relative gap allowed in f64 (see the module docs).
const F64_REL: f64 = 1e-9;

/// cuda:0, or `None` after printing why `test` is skipped.
fn gpu(test: &str) -> Option<Device> {
    if let Err(why) = arbor_cuda::gpu_available() {
        eprintln!("SKIPPED: {test}: {why}");
        return None;
    }
    if let Err(e) = arbor_engine::cuda::device(0) {
        panic!("{test}: a GPU is present but cuda:0 could not be opened: {e}");
    }
    Some(Device::Cuda(0))
}

/// A constant of `shape` with values uniform in `[lo, hi)` from `seed`, on `dev`.
fn input(dev: Device, dt: DType, shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(SplitMix::new(seed).vec(n, lo, hi), shape.to_vec())
        .and_then(|t| t.to_dtype(dt))
        .and_then(|t| t.to_device(dev))
        .expect("test input")
}

/// The same as a trainable leaf.
fn param(dev: Device, dt: DType, shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    input(dev, dt, shape, seed, lo, hi).into_parameter()
}

/// Backpropagates `sum_k sum(y_k * w_k)` for fixed random `w_k`, so every element of
/// every output gets its own upstream gradient. One backward for all outputs, because a
/// backward consumes the tape.
fn backprop(ys: &[&Tensor], seed: u64) -> Result<()> {
    let mut total: Option<Tensor> = None;
    for (k, y) in ys.iter().enumerate() {
        let w = input(y.device(), y.dtype(), y.dims(), seed + k as u64, -1.0, 1.0);
        let term = y.mul(&w)?.sum_all()?;
        total = Some(match total {
            Some(t) => t.add(&term)?,
            None => term,
        });
    }
    total.expect("at least one output").backward()
}

/// The gradient a leaf received.
fn grad(t: &Tensor) -> Tensor {
    t.grad().expect("the leaf received a gradient")
}

/// Named outputs of one run of a test body.
type Outputs = Vec<(String, Tensor)>;

/// Compares the outputs of the CPU and GPU runs (see the module docs for the measure).
fn compare(test: &str, dt: DType, cpu: &Outputs, gpu: &Outputs, rel: f64) {
    assert_eq!(cpu.len(), gpu.len(), "{test}: output count");
    for ((name, c), (_, g)) in cpu.iter().zip(gpu) {
        assert_eq!(c.dims(), g.dims(), "{test} {dt} {name}: shape");
        assert_eq!(
            g.device(),
            Device::Cuda(0),
            "{test} {dt} {name}: left the GPU"
        );
        let (c, g) = (c.to_vec_f64().unwrap(), g.to_vec_f64().unwrap());
        assert_close(&format!("{test} {dt} {name}"), &c, &g, rel);
    }
}

/// `|got - want| <= rel * max(|want|, 1e-3 * max |want|)` element by element.
fn assert_close(what: &str, want: &[f64], got: &[f64], rel: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let floor = (1e-3 * scale).max(f64::MIN_POSITIVE);
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let err = (g - w).abs() / w.abs().max(floor);
        assert!(
            err <= rel || (w.is_nan() && g.is_nan()),
            "{what}[{i}]: cpu {w}, gpu {g} (relative gap {err:.2e} > {rel:.0e})"
        );
    }
}

/// Defines a test that runs `$body` (a closure `(Device, DType) -> Result<Outputs>`) on
/// the CPU and on cuda:0, in f32 and f64, and compares the outputs; `$rel` is the f32
/// tolerance.
macro_rules! device_test {
    ($name:ident, $rel:expr, $body:expr) => {
        #[test]
        fn $name() {
            let Some(gpu) = crate::gpu(stringify!($name)) else {
                return;
            };
            let body = $body;
            for (dt, rel) in [(DType::F32, $rel), (DType::F64, crate::F64_REL)] {
                let on_cpu: Result<crate::Outputs> = body(Device::Cpu, dt);
                let on_gpu: Result<crate::Outputs> = body(gpu, dt);
                let (cpu, gpu) = (on_cpu.expect("CPU run"), on_gpu.expect("GPU run"));
                crate::compare(stringify!($name), dt, &cpu, &gpu, rel);
            }
        }
    };
}

/// `("name", tensor)` pairs as [`Outputs`].
macro_rules! outputs {
    ($($name:expr => $t:expr),* $(,)?) => {
        vec![$(($name.to_string(), $t)),*]
    };
}

// The op families' tests; declared after the macros so that they can use them.
#[path = "cuda_ops/fused.rs"]
mod fused;
#[path = "cuda_ops/loss.rs"]
mod loss;
#[path = "cuda_ops/nn.rs"]
mod nn;

device_test!(unary_ops, 1e-5, |dev: Device,
                               dt: DType|
 -> Result<Outputs> {
    let mut out = Vec::new();
    type Op = fn(&Tensor) -> Result<Tensor>;
    let ops: [(&str, Op, f64, f64); 8] = [
        ("neg", |x| x.neg(), -2.0, 2.0),
        ("exp", |x| x.exp(), -2.0, 2.0),
        ("log", |x| x.log(), 0.2, 3.0),
        ("sqrt", |x| x.sqrt(), 0.2, 3.0),
        ("relu", |x| x.relu(), -2.0, 2.0),
        ("clamp", |x| x.clamp(-0.5, 0.7), -2.0, 2.0),
        ("powf", |x| x.powf(1.7), 0.2, 3.0),
        ("affine", |x| x.affine(-1.5, 0.25), -2.0, 2.0),
    ];
    for (i, (name, op, lo, hi)) in ops.into_iter().enumerate() {
        let x = param(dev, dt, &[4, 33], 10 + i as u64, lo, hi);
        let y = op(&x)?;
        backprop(&[&y], 50 + i as u64)?;
        out.push((name.to_string(), y));
        out.push((format!("d{name}/dx"), grad(&x)));
    }
    Ok(out)
});

device_test!(binary_ops_broadcast, 1e-5, |dev: Device,
                                          dt: DType|
 -> Result<Outputs> {
    let mut out = Vec::new();
    type Op = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let ops: [(&str, Op); 4] = [
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
    ];
    for (i, (name, op)) in ops.into_iter().enumerate() {
        let a = param(dev, dt, &[3, 4, 5], 20 + i as u64, -2.0, 2.0);
        let b = param(dev, dt, &[4, 1], 30 + i as u64, 0.5, 2.0);
        let y = op(&a, &b)?;
        backprop(&[&y], 40 + i as u64)?;
        out.extend(outputs![name => y, "da" => grad(&a), "db" => grad(&b)]);
    }
    let row = param(dev, dt, &[1, 5], 45, -1.0, 1.0);
    let wide = row.broadcast_to([3, 4, 5])?;
    backprop(&[&wide], 46)?;
    out.extend(outputs!["broadcast_to" => wide, "d row" => grad(&row)]);
    Ok(out)
});

device_test!(reductions, 1e-5, |dev: Device,
                                dt: DType|
 -> Result<Outputs> {
    let x = param(dev, dt, &[3, 4, 5], 60, -2.0, 2.0);
    let sum = x.sum(&[0, 2], false)?;
    let mean = x.mean(&[1], true)?;
    let max = x.max(1, false)?;
    let lse = x.logsumexp(2, true)?;
    let all = x.sum_all()?;
    backprop(&[&sum, &mean, &max, &lse, &all], 61)?;
    // Rows longer than a warp's share (the `_block` kernels) and a strided outer axis.
    let long = param(dev, dt, &[2, 3000], 66, -3.0, 3.0);
    let (lsum, lmax, llse) = (
        long.sum(&[1], false)?,
        long.max(1, false)?,
        long.logsumexp(1, false)?,
    );
    let down = long.sum(&[0], false)?;
    backprop(&[&lsum, &lmax, &llse, &down], 67)?;
    Ok(outputs![
        "sum" => sum, "mean" => mean, "max" => max, "logsumexp" => lse, "sum_all" => all,
        "dx" => grad(&x), "long sum" => lsum, "long max" => lmax, "long lse" => llse,
        "long sum over rows" => down, "d long" => grad(&long),
    ])
});

device_test!(matmul_variants, 1e-5, |dev: Device,
                                     dt: DType|
 -> Result<Outputs> {
    let a = param(dev, dt, &[5, 7], 70, -1.0, 1.0);
    let b = param(dev, dt, &[7, 3], 71, -1.0, 1.0);
    let at = param(dev, dt, &[7, 5], 72, -1.0, 1.0);
    let bt = param(dev, dt, &[3, 7], 73, -1.0, 1.0);
    let ba = param(dev, dt, &[2, 5, 7], 74, -1.0, 1.0);
    let bb = param(dev, dt, &[2, 7, 3], 75, -1.0, 1.0);
    let w = param(dev, dt, &[4, 7], 76, -1.0, 1.0);
    let bias = param(dev, dt, &[4], 77, -1.0, 1.0);
    let ys = [
        a.matmul(&b)?,
        at.matmul_t(&bt, true, true)?,
        ba.matmul(&bb)?,
        ba.matmul(&b)?,
        a.linear(&w, Some(&bias))?,
    ];
    backprop(&ys.iter().collect::<Vec<_>>(), 80)?;
    let mut out: Outputs = ys
        .into_iter()
        .enumerate()
        .map(|(i, y)| (format!("product {i}"), y))
        .collect();
    for (name, t) in [("a", &a), ("b", &b), ("at", &at), ("bt", &bt), ("ba", &ba)] {
        out.push((format!("d{name}"), grad(t)));
    }
    out.extend(outputs!["dbb" => grad(&bb), "dw" => grad(&w), "dbias" => grad(&bias)]);
    Ok(out)
});

device_test!(index_and_shape_ops, 1e-5, |dev: Device,
                                         dt: DType|
 -> Result<Outputs> {
    let x = param(dev, dt, &[2, 3, 4, 5], 90, -1.0, 1.0);
    let permuted = x.permute(&[2, 0, 3, 1])?;
    let transposed = x.transpose(1, 3)?;
    let sliced = x.slice(&[(0, 2, 1), (1, 3, 1), (0, 4, 2), (1, 5, 3)])?;
    let padded = x.pad_channels(2, 1)?;
    let selected = x.index_select(1, &[2, 0, 2])?;
    let gathered = x.gather(3, &[4, 0, 1, 1, 3, 2].repeat(8), [2, 3, 4, 2])?;
    let y = param(dev, dt, &[2, 1, 4, 5], 91, -1.0, 1.0);
    let joined = Tensor::concat(&[x.clone(), y.clone(), x.clone()], 1)?;
    let ys = [
        permuted, transposed, sliced, padded, selected, gathered, joined,
    ];
    backprop(&ys.iter().collect::<Vec<_>>(), 92)?;
    let names = [
        "permute",
        "transpose",
        "slice",
        "pad_channels",
        "index_select",
        "gather",
    ];
    let mut out: Outputs = names
        .iter()
        .map(|n| n.to_string())
        .chain(["concat".to_string()])
        .zip(ys)
        .collect();
    out.extend(outputs!["dx" => grad(&x), "dy" => grad(&y)]);
    Ok(out)
});

/// Moving, casting and assigning across devices keep the values exactly.
#[test]
fn transfers_are_exact() {
    let Some(gpu) = gpu("transfers_are_exact") else {
        return;
    };
    let host = input(Device::Cpu, DType::F32, &[3, 7], 1, -5.0, 5.0);
    let there = host.to_device(gpu).unwrap();
    assert_eq!(there.device(), gpu);
    assert_eq!(
        there.to_vec::<f32>().unwrap(),
        host.to_vec::<f32>().unwrap()
    );
    let back = there.to_device(Device::Cpu).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), host.to_vec::<f32>().unwrap());
    let wide = there.to_dtype(DType::F64).unwrap();
    assert_eq!(wide.device(), gpu);
    assert_eq!(wide.to_vec_f64().unwrap(), host.to_vec_f64().unwrap());
    // A host tensor assigned into a GPU tensor is uploaded, not stored on the host.
    let target = Tensor::zeros([3, 7], DType::F32).to_device(gpu).unwrap();
    target.assign(&host).unwrap();
    assert_eq!(target.storage().device(), gpu);
    assert_eq!(
        target.to_vec::<f32>().unwrap(),
        host.to_vec::<f32>().unwrap()
    );
    // Mixing devices in one op is an error naming both.
    let err = host.add(&there).unwrap_err().to_string();
    assert!(err.contains("cpu") && err.contains("cuda:0"), "{err}");
}
