//! Elementwise kernels (unary, binary with broadcasting, fill / copy / cast, SGD) against
//! host loops. Skipped with a printed reason when there is no GPU.

mod common;

use arbor_cuda::ops::elementwise::*;
use arbor_cuda::ops::memory::{cast, copy_into_strided, copy_strided, fill, StridedView};
use arbor_cuda::ops::sgd::{sgd_momentum, SgdStep};
use arbor_cuda::{gpu_available, Error, GpuDevice};
use common::*;

#[test]
fn missing_gpu_is_an_error_not_a_panic() {
    match gpu_available() {
        Ok(()) => assert!(GpuDevice::new(0).is_ok()),
        Err(reason) => {
            assert!(!reason.is_empty());
            assert!(matches!(GpuDevice::new(0), Err(Error::NoGpu(_))));
        }
    }
}

fn unary_case<T: Float>(dev: &GpuDevice) {
    let mut rng = Rng::new(1);
    // Mixed signs around 0 for neg/relu/clamp; positives for log/sqrt/powf.
    let mixed = rng.vec(1000, -3.0, 3.0);
    let positive: Vec<f64> = rng.vec(1000, 0.1, 4.0);
    let run = |x: &[f64], f: &dyn Fn(&arbor_cuda::CudaSlice<T>, &mut arbor_cuda::CudaSlice<T>)| {
        let x_dev = dev.upload(&to_t::<T>(x)).unwrap();
        let mut y_dev = dev.alloc_zeros::<T>(x.len()).unwrap();
        f(&x_dev, &mut y_dev);
        to_f64(&dev.download(&y_dev).unwrap())
    };
    type Case<'a> = (UnaryOp, &'a [f64], fn(f64) -> f64);
    let cases: [Case; 5] = [
        (UnaryOp::Neg, &mixed, |v| -v),
        (UnaryOp::Exp, &mixed, f64::exp),
        (UnaryOp::Log, &positive, f64::ln),
        (UnaryOp::Sqrt, &positive, f64::sqrt),
        (UnaryOp::Relu, &mixed, |v| v.max(0.0)),
    ];
    for (op, x, f) in cases {
        let got = run(x, &|x, y| unary_fwd(dev, op, x, y).unwrap());
        let want: Vec<f64> = to_f64(&to_t::<T>(x)).into_iter().map(f).collect();
        assert_close(&format!("{op:?}"), &got, &want, T::REL, T::ABS);
    }
    let xs = to_f64(&to_t::<T>(&mixed));
    let lo = T::from_f64(-1.0);
    let hi = T::from_f64(1.5);
    let got = run(&mixed, &|x, y| clamp_fwd(dev, x, y, lo, hi).unwrap());
    assert_close(
        "clamp",
        &got,
        &xs.iter().map(|v| v.clamp(-1.0, 1.5)).collect::<Vec<_>>(),
        0.0,
        0.0,
    );
    let got = run(&positive, &|x, y| {
        powf_fwd(dev, x, y, T::from_f64(1.7)).unwrap()
    });
    let ps = to_f64(&to_t::<T>(&positive));
    assert_close(
        "powf",
        &got,
        &ps.iter().map(|v| v.powf(1.7)).collect::<Vec<_>>(),
        T::REL,
        T::ABS,
    );
    let got = run(&mixed, &|x, y| {
        affine_fwd(dev, x, y, T::from_f64(0.5), T::from_f64(2.0)).unwrap()
    });
    assert_close(
        "affine",
        &got,
        &xs.iter().map(|v| 0.5 * v + 2.0).collect::<Vec<_>>(),
        T::REL,
        0.0,
    );
}

#[test]
fn unary_ops_match_host() {
    let Some(dev) = gpu("unary_ops_match_host") else {
        return;
    };
    unary_case::<f32>(&dev);
    unary_case::<f64>(&dev);
}

fn binary_case<T: Float>(dev: &GpuDevice, a_shape: &[usize], b_shape: &[usize]) {
    let mut rng = Rng::new(2);
    let a: Vec<f64> = to_f64(&to_t::<T>(&rng.vec(a_shape.iter().product(), 0.5, 2.0)));
    let b: Vec<f64> = to_f64(&to_t::<T>(&rng.vec(b_shape.iter().product(), 0.5, 2.0)));
    let out_shape = host_broadcast(a_shape, b_shape);
    let n: usize = out_shape.iter().product();
    let a_dev = dev.upload(&to_t::<T>(&a)).unwrap();
    let b_dev = dev.upload(&to_t::<T>(&b)).unwrap();
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        let mut out = dev.alloc_zeros::<T>(n).unwrap();
        binary(dev, op, &a_dev, a_shape, &b_dev, b_shape, &mut out).unwrap();
        let got = to_f64(&dev.download(&out).unwrap());
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let x = a[source_index(i, &out_shape, a_shape)];
                let y = b[source_index(i, &out_shape, b_shape)];
                match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Sub => x - y,
                    BinaryOp::Mul => x * y,
                    BinaryOp::Div => x / y,
                    BinaryOp::Eq | BinaryOp::ReluGrad => unreachable!("tested below"),
                }
            })
            .collect();
        assert_close(
            &format!("{op:?} {a_shape:?} {b_shape:?}"),
            &got,
            &want,
            T::REL,
            0.0,
        );
    }
}

/// The backward masks: `a` is shifted to straddle 0 and one of its values is copied into
/// `b`, so every branch of eq, relu_grad and clamp_grad is taken.
fn mask_case<T: Float>(dev: &GpuDevice, a_shape: &[usize], b_shape: &[usize]) {
    let mut rng = Rng::new(3);
    let mut a: Vec<f64> = to_f64(&to_t::<T>(&rng.vec(a_shape.iter().product(), -1.0, 1.0)));
    let mut b: Vec<f64> = to_f64(&to_t::<T>(&rng.vec(b_shape.iter().product(), -1.0, 1.0)));
    b[0] = a[0];
    let last = a.len() - 1;
    a[last] = 0.5; // exactly on the clamp bound
    let out_shape = host_broadcast(a_shape, b_shape);
    let n: usize = out_shape.iter().product();
    let a_dev = dev.upload(&to_t::<T>(&a)).unwrap();
    let b_dev = dev.upload(&to_t::<T>(&b)).unwrap();
    let pairs = |i: usize| {
        (
            a[source_index(i, &out_shape, a_shape)],
            b[source_index(i, &out_shape, b_shape)],
        )
    };
    for op in [BinaryOp::Eq, BinaryOp::ReluGrad] {
        let mut out = dev.alloc_zeros::<T>(n).unwrap();
        binary(dev, op, &a_dev, a_shape, &b_dev, b_shape, &mut out).unwrap();
        let got = to_f64(&dev.download(&out).unwrap());
        let want: Vec<f64> = (0..n)
            .map(|i| match (op, pairs(i)) {
                (BinaryOp::Eq, (x, y)) => f64::from(u8::from(x == y)),
                (_, (x, y)) => {
                    if x > 0.0 {
                        y
                    } else {
                        0.0
                    }
                }
            })
            .collect();
        assert_close(
            &format!("{op:?} {a_shape:?} {b_shape:?}"),
            &got,
            &want,
            0.0,
            0.0,
        );
    }
    let mut out = dev.alloc_zeros::<T>(n).unwrap();
    let (lo, hi) = (T::from_f64(-0.25), T::from_f64(0.5));
    clamp_grad(dev, &a_dev, a_shape, &b_dev, b_shape, &mut out, lo, hi).unwrap();
    let got = to_f64(&dev.download(&out).unwrap());
    let want: Vec<f64> = (0..n)
        .map(|i| match pairs(i) {
            (x, y) if (-0.25..=0.5).contains(&x) => y,
            _ => 0.0,
        })
        .collect();
    assert_close("clamp_grad", &got, &want, 0.0, 0.0);
}

#[test]
fn backward_masks_match_host() {
    let Some(dev) = gpu("backward_masks_match_host") else {
        return;
    };
    for (a, b) in [(&[4, 5][..], &[4, 5][..]), (&[3, 1, 4][..], &[2, 1][..])] {
        mask_case::<f32>(&dev, a, b);
        mask_case::<f64>(&dev, a, b);
    }
}

/// NumPy broadcast, written independently of the crate's version.
fn host_broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
    pad(a).iter().zip(pad(b)).map(|(&x, y)| x.max(y)).collect()
}

/// Flat index into an input of shape `input` (right-aligned, broadcast) for output index i.
fn source_index(mut i: usize, out: &[usize], input: &[usize]) -> usize {
    let lead = out.len() - input.len();
    let (mut index, mut stride) = (0, 1);
    for d in (0..out.len()).rev() {
        let coord = i % out[d];
        i /= out[d];
        if d >= lead {
            let size = input[d - lead];
            index += if size == 1 { 0 } else { coord * stride };
            stride *= size;
        }
    }
    index
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let Some(dev) = gpu("binary_ops_broadcast_like_numpy") else {
        return;
    };
    let cases: [(&[usize], &[usize]); 6] = [
        (&[1000], &[1000]),
        (&[4, 5, 6], &[1]),
        (&[4, 5, 6], &[5, 1]),
        (&[4, 1, 6], &[1, 5, 1]),
        (&[2, 3, 4, 5, 6, 7], &[3, 1, 5, 1, 7]),
        (&[2, 2, 2, 2, 2, 2, 2, 3], &[3]),
    ];
    for (a, b) in cases {
        binary_case::<f32>(&dev, a, b);
        binary_case::<f64>(&dev, b, a);
    }
}

#[test]
fn fill_copy_and_cast() {
    let Some(dev) = gpu("fill_copy_and_cast") else {
        return;
    };
    let mut y = dev.alloc_zeros::<f32>(777).unwrap();
    fill(&dev, &mut y, 2.5).unwrap();
    assert!(dev.download(&y).unwrap().iter().all(|&v| v == 2.5));

    // Transpose of a [3, 4] matrix stored at offset 2 of a bigger buffer.
    let x: Vec<f64> = (0..20).map(f64::from).collect();
    let x_dev = dev.upload(&x).unwrap();
    let mut t = dev.alloc_zeros::<f64>(12).unwrap();
    let view = StridedView {
        shape: &[4, 3],
        strides: &[1, 4],
        offset: 2,
    };
    copy_strided(&dev, &x_dev, &view, &mut t).unwrap();
    let want: Vec<f64> = (0..4)
        .flat_map(|c| (0..3).map(move |r| (2 + r * 4 + c) as f64))
        .collect();
    assert_eq!(dev.download(&t).unwrap(), want);
    // Broadcast-expand a row: stride 0 along the new axis.
    let mut e = dev.alloc_zeros::<f64>(15).unwrap();
    copy_strided(
        &dev,
        &x_dev,
        &StridedView {
            shape: &[3, 5],
            strides: &[0, 1],
            offset: 0,
        },
        &mut e,
    )
    .unwrap();
    assert_eq!(
        dev.download(&e).unwrap(),
        [x[..5].to_vec(), x[..5].to_vec(), x[..5].to_vec()].concat()
    );
    // A view past the buffer's end is an error, not a launch.
    let bad = StridedView {
        shape: &[4, 3],
        strides: &[1, 8],
        offset: 0,
    };
    assert!(copy_strided(&dev, &x_dev, &bad, &mut t).is_err());
    // And back: the transpose written into a zeroed buffer lands where it was read from.
    let mut back = dev.alloc_zeros::<f64>(20).unwrap();
    copy_into_strided(&dev, &t, &view, &mut back).unwrap();
    let back = dev.download(&back).unwrap();
    assert!((0..20).all(|i| back[i] == if (2..14).contains(&i) { x[i] } else { 0.0 }));
    let overlapping = StridedView {
        shape: &[2, 6],
        strides: &[0, 1],
        offset: 0,
    };
    assert!(copy_into_strided(&dev, &t, &overlapping, &mut e).is_err());

    // Casts round to nearest even, like the `half` crate.
    let values: Vec<f32> = Rng::new(3)
        .vec(500, -70000.0, 70000.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let src = dev.upload(&values).unwrap();
    let mut h = dev.alloc_zeros::<half::f16>(values.len()).unwrap();
    cast(&dev, &src, &mut h).unwrap();
    let want: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
    assert_eq!(dev.download(&h).unwrap(), want);
    let mut bf = dev.alloc_zeros::<half::bf16>(values.len()).unwrap();
    cast(&dev, &src, &mut bf).unwrap();
    let want: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
    assert_eq!(dev.download(&bf).unwrap(), want);
    let mut back = dev.alloc_zeros::<f64>(values.len()).unwrap();
    cast(&dev, &bf, &mut back).unwrap();
    let want: Vec<f64> = values
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f64())
        .collect();
    assert_eq!(dev.download(&back).unwrap(), want);
}

#[test]
fn sgd_momentum_matches_torch_formula() {
    let Some(dev) = gpu("sgd_momentum_matches_torch_formula") else {
        return;
    };
    let mut rng = Rng::new(4);
    let (p, g, v) = (
        rng.vec(3000, -1.0, 1.0),
        rng.vec(3000, -1.0, 1.0),
        rng.vec(3000, -0.1, 0.1),
    );
    let step = SgdStep {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    let mut p_dev = dev.upload(&p).unwrap();
    let g_dev = dev.upload(&g).unwrap();
    let mut v_dev = dev.upload(&v).unwrap();
    sgd_momentum(&dev, &mut p_dev, &g_dev, &mut v_dev, step).unwrap();
    let v_want: Vec<f64> = (0..p.len())
        .map(|i| 0.9 * v[i] + (g[i] + 5e-4 * p[i]))
        .collect();
    let p_want: Vec<f64> = (0..p.len()).map(|i| p[i] - 0.1 * v_want[i]).collect();
    assert_close("v", &dev.download(&v_dev).unwrap(), &v_want, 1e-14, 1e-16);
    assert_close("p", &dev.download(&p_dev).unwrap(), &p_want, 1e-14, 1e-16);
}
