//! Axis reductions and softmax against host loops, in both layouts (reduced axis
//! contiguous or strided) and both row variants (a warp per row, a block per row).

mod common;

use arbor_cuda::ops::reduce::*;
use arbor_cuda::ops::softmax::*;
use arbor_cuda::ops::AxisDims;
use arbor_cuda::GpuDevice;
use common::*;

/// [outer, axis, inner] shapes covering: contiguous warp rows, a partial last block of
/// rows, contiguous block rows (axis > 1024), and strided axes.
const SHAPES: [AxisDims; 5] = [
    AxisDims {
        outer: 13,
        axis: 10,
        inner: 1,
    },
    AxisDims {
        outer: 64,
        axis: 1024,
        inner: 1,
    },
    AxisDims {
        outer: 5,
        axis: 3000,
        inner: 1,
    },
    AxisDims {
        outer: 3,
        axis: 7,
        inner: 33,
    },
    AxisDims {
        outer: 1,
        axis: 2500,
        inner: 2,
    },
];

/// Host reduction of x over the axis with `f` applied to each [outer, inner] lane.
fn host_reduce(x: &[f64], d: AxisDims, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(d.outer * d.inner);
    for o in 0..d.outer {
        for i in 0..d.inner {
            let lane: Vec<f64> = (0..d.axis)
                .map(|r| x[(o * d.axis + r) * d.inner + i])
                .collect();
            out.push(f(&lane));
        }
    }
    out
}

fn host_logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn reductions<T: Float>(dev: &GpuDevice, d: AxisDims) {
    let mut rng = Rng::new(d.len() as u64);
    let x = to_f64(&to_t::<T>(&rng.vec(d.len(), -4.0, 4.0)));
    let x_dev = dev.upload(&to_t::<T>(&x)).unwrap();
    let out_len = d.outer * d.inner;
    let tol = T::REL * (d.axis as f64).sqrt();

    let mut y = dev.alloc_zeros::<T>(out_len).unwrap();
    sum_axis(dev, &x_dev, &mut y, d).unwrap();
    let want = host_reduce(&x, d, |v| v.iter().sum());
    // Sums of mixed-sign terms can nearly cancel; bound the error by the sum of |x|.
    let scale = host_reduce(&x, d, |v| v.iter().map(|x| x.abs()).sum());
    let got = to_f64(&dev.download(&y).unwrap());
    for i in 0..out_len {
        assert!(
            (got[i] - want[i]).abs() <= tol * scale[i],
            "sum {d:?}[{i}]: {} vs {}",
            got[i],
            want[i]
        );
    }

    let mut argmax = dev.alloc_zeros::<i32>(out_len).unwrap();
    max_axis(dev, &x_dev, &mut y, &mut argmax, d).unwrap();
    let want_idx = host_reduce(&x, d, |v| {
        // first index of the maximum
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        v.iter().position(|&x| x == m).unwrap() as f64
    });
    let got_idx: Vec<f64> = dev
        .download(&argmax)
        .unwrap()
        .iter()
        .map(|&i| i as f64)
        .collect();
    assert_eq!(got_idx, want_idx, "argmax {d:?}");
    assert_close(
        "max",
        &to_f64(&dev.download(&y).unwrap()),
        &host_reduce(&x, d, |v| v.iter().cloned().fold(f64::MIN, f64::max)),
        0.0,
        0.0,
    );

    logsumexp_axis(dev, &x_dev, &mut y, d).unwrap();
    let lse = host_reduce(&x, d, host_logsumexp);
    assert_close(
        "logsumexp",
        &to_f64(&dev.download(&y).unwrap()),
        &lse,
        tol,
        T::ABS,
    );
}

#[test]
fn axis_reductions_match_host() {
    let Some(dev) = gpu("axis_reductions_match_host") else {
        return;
    };
    for d in SHAPES {
        reductions::<f32>(&dev, d);
        reductions::<f64>(&dev, d);
    }
}

#[test]
fn max_propagates_nan_and_handles_all_negative_infinity() {
    let Some(dev) = gpu("max_propagates_nan_and_handles_all_negative_infinity") else {
        return;
    };
    let x = [
        1.0f32,
        f32::NAN,
        3.0,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    ];
    let d = AxisDims {
        outer: 2,
        axis: 3,
        inner: 1,
    };
    let x_dev = dev.upload(&x).unwrap();
    let mut y = dev.alloc_zeros::<f32>(2).unwrap();
    let mut idx = dev.alloc_zeros::<i32>(2).unwrap();
    max_axis(&dev, &x_dev, &mut y, &mut idx, d).unwrap();
    let (y, idx) = (dev.download(&y).unwrap(), dev.download(&idx).unwrap());
    assert!(y[0].is_nan() && idx[0] == 1);
    assert_eq!((y[1], idx[1]), (f32::NEG_INFINITY, 0));
    let mut lse = dev.alloc_zeros::<f32>(2).unwrap();
    logsumexp_axis(&dev, &x_dev, &mut lse, d).unwrap();
    assert_eq!(dev.download(&lse).unwrap()[1], f32::NEG_INFINITY);
}

fn softmaxes<T: Float>(dev: &GpuDevice, rows: usize, cols: usize) {
    let mut rng = Rng::new((rows * cols) as u64);
    let x = to_f64(&to_t::<T>(&rng.vec(rows * cols, -8.0, 8.0)));
    let dy = to_f64(&to_t::<T>(&rng.vec(rows * cols, -1.0, 1.0)));
    let x_dev = dev.upload(&to_t::<T>(&x)).unwrap();
    let dy_dev = dev.upload(&to_t::<T>(&dy)).unwrap();
    let mut y = dev.alloc_zeros::<T>(rows * cols).unwrap();
    let mut dx = dev.alloc_zeros::<T>(rows * cols).unwrap();
    let tol = T::REL * 4.0;
    let row = |r: usize| r * cols..(r + 1) * cols;

    let mut want_log = Vec::new();
    let mut want_dx_log = Vec::new();
    let mut want_soft = Vec::new();
    let mut want_dx_soft = Vec::new();
    for r in 0..rows {
        let lse = host_logsumexp(&x[row(r)]);
        let log_y: Vec<f64> = x[row(r)].iter().map(|v| v - lse).collect();
        let soft: Vec<f64> = log_y.iter().map(|v| v.exp()).collect();
        let sum_dy: f64 = dy[row(r)].iter().sum();
        let dot: f64 = dy[row(r)].iter().zip(&soft).map(|(a, b)| a * b).sum();
        want_dx_log.extend(dy[row(r)].iter().zip(&soft).map(|(g, p)| g - p * sum_dy));
        want_dx_soft.extend(dy[row(r)].iter().zip(&soft).map(|(g, p)| p * (g - dot)));
        want_log.extend(log_y);
        want_soft.extend(soft);
    }

    log_softmax_fwd(dev, &x_dev, &mut y, rows, cols).unwrap();
    assert_close(
        "log_softmax",
        &to_f64(&dev.download(&y).unwrap()),
        &want_log,
        tol,
        T::ABS,
    );
    log_softmax_bwd(dev, &y, &dy_dev, &mut dx, rows, cols).unwrap();
    assert_close(
        "log_softmax_bwd",
        &to_f64(&dev.download(&dx).unwrap()),
        &want_dx_log,
        tol,
        T::ABS,
    );
    softmax_fwd(dev, &x_dev, &mut y, rows, cols).unwrap();
    assert_close(
        "softmax",
        &to_f64(&dev.download(&y).unwrap()),
        &want_soft,
        tol,
        0.0,
    );
    softmax_bwd(dev, &y, &dy_dev, &mut dx, rows, cols).unwrap();
    assert_close(
        "softmax_bwd",
        &to_f64(&dev.download(&dx).unwrap()),
        &want_dx_soft,
        tol,
        T::ABS,
    );
}

#[test]
fn softmax_rows_match_host() {
    let Some(dev) = gpu("softmax_rows_match_host") else {
        return;
    };
    for (rows, cols) in [(13, 10), (9, 1024), (4, 1025), (3, 5000)] {
        softmaxes::<f32>(&dev, rows, cols);
        softmaxes::<f64>(&dev, rows, cols);
    }
}
