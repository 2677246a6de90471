//! Forward values of conv2d, pooling and batch norm against direct loops written here,
//! batch-norm running statistics and thread-count independence. (Their validation errors
//! are in `errors.rs`.)
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::{DType, Tensor};

/// Geometry of a direct-loop convolution: input `[n, c_in, h, w]`, weight
/// `[c_out, c_in, kh, kw]`, stride, padding.
struct Geom {
    x: [usize; 4],
    w: [usize; 4],
    stride: (usize, usize),
    pad: (usize, usize),
}

fn geom(x: [usize; 4], w: [usize; 4], stride: (usize, usize), pad: (usize, usize)) -> Geom {
    Geom { x, w, stride, pad }
}

impl Geom {
    fn out(&self) -> (usize, usize) {
        (
            (self.x[2] + 2 * self.pad.0 - self.w[2]) / self.stride.0 + 1,
            (self.x[3] + 2 * self.pad.1 - self.w[3]) / self.stride.1 + 1,
        )
    }
    /// Calls `f(b, co, oy, ox, ci, iy, ix, ky, kx)` for every in-image term of the sum.
    fn each_term(&self, mut f: impl FnMut([usize; 9])) {
        let [n, ci_n, h, w] = self.x;
        let [co_n, _, kh, kw] = self.w;
        let (ho, wo) = self.out();
        for b in 0..n {
            for co in 0..co_n {
                for oy in 0..ho {
                    for ox in 0..wo {
                        for ci in 0..ci_n {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy =
                                        (oy * self.stride.0 + ky) as isize - self.pad.0 as isize;
                                    let ix =
                                        (ox * self.stride.1 + kx) as isize - self.pad.1 as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        f([b, co, oy, ox, ci, iy as usize, ix as usize, ky, kx]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    fn xi(&self, b: usize, c: usize, y: usize, x: usize) -> usize {
        ((b * self.x[1] + c) * self.x[2] + y) * self.x[3] + x
    }
    fn wi(&self, co: usize, ci: usize, ky: usize, kx: usize) -> usize {
        ((co * self.w[1] + ci) * self.w[2] + ky) * self.w[3] + kx
    }
    fn yi(&self, b: usize, co: usize, oy: usize, ox: usize) -> usize {
        let (ho, wo) = self.out();
        ((b * self.w[0] + co) * ho + oy) * wo + ox
    }
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// `|got - want| <= 1e-5 (1 + S)` with `S` the sum of the magnitudes of the terms that
/// make up `want`: rounding error grows with `S`, not with `|want|` (a sum that cancels
/// to near 0 still carries its terms' rounding). An f32 sum of `n` terms can err by
/// `n u S` (`u = 2^-24`; 144 terms: 8.6e-6 S). Winograd rounds transformed values,
/// which are larger than the terms, and errs most: F(4x4, 3x3) by up to 2.2e-6 S here
/// (AVX2, 16 channels at 8x8), the direct kernels and F(2x2, 3x3) by a few times less.
/// A wrong index or tap is off by a whole term, about `S / n` (7e-3 S at 144 terms).
fn assert_within_magnitude(got: &[f64], want: &[f64], sizes: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, ((g, w), s)) in got.iter().zip(want).zip(sizes).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + s),
            "{what}[{i}]: got {g}, want {w} (terms' magnitudes {s})"
        );
    }
}

/// conv2d forward and both gradients (f32, batch > the weight-gradient group) against the
/// direct sums. The first four take the generic path; the last four (16 input channels,
/// output positions a multiple of 16) take the AVX-512 one where the CPU has it, with
/// output widths of 8 and 16 at strides 1 and 2.
#[test]
fn conv2d_matches_direct_loops() {
    let cases = [
        geom([10, 3, 7, 6], [5, 3, 3, 3], (1, 1), (1, 1)),
        geom([9, 4, 9, 8], [6, 4, 3, 3], (2, 2), (1, 1)),
        geom([3, 2, 5, 9], [3, 2, 2, 4], (1, 2), (2, 0)),
        geom([4, 6, 4, 5], [3, 6, 1, 1], (1, 1), (0, 0)),
        geom([10, 16, 8, 8], [16, 16, 3, 3], (1, 1), (1, 1)),
        geom([2, 16, 6, 16], [8, 16, 3, 3], (1, 1), (1, 1)),
        geom([2, 16, 9, 32], [24, 16, 3, 3], (2, 2), (1, 1)),
        geom([2, 16, 16, 16], [32, 16, 3, 3], (2, 2), (1, 1)),
    ];
    let mut r = SplitMix::new(3);
    for g in cases {
        let xv = r.vec(g.x.iter().product(), -1.0, 1.0);
        let wv = r.vec(g.w.iter().product(), -1.0, 1.0);
        let bv = r.vec(g.w[0], -1.0, 1.0);
        let (ho, wo) = g.out();
        let ny = g.x[0] * g.w[0] * ho * wo;
        let dyv = r.vec(ny, -1.0, 1.0);
        let (mut y, mut dx, mut dw) = (vec![0.0; ny], vec![0.0; xv.len()], vec![0.0; wv.len()]);
        // The sums of the terms' magnitudes, which scale each result's rounding error.
        let (mut ym, mut dxm, mut dwm) = (y.clone(), dx.clone(), dw.clone());
        g.each_term(|[b, co, oy, ox, ci, iy, ix, ky, kx]| {
            let (xi, wi, yi) = (
                g.xi(b, ci, iy, ix),
                g.wi(co, ci, ky, kx),
                g.yi(b, co, oy, ox),
            );
            y[yi] += wv[wi] * xv[xi];
            dx[xi] += wv[wi] * dyv[yi];
            dw[wi] += dyv[yi] * xv[xi];
            ym[yi] += (wv[wi] * xv[xi]).abs();
            dxm[xi] += (wv[wi] * dyv[yi]).abs();
            dwm[wi] += (dyv[yi] * xv[xi]).abs();
        });
        for (i, y) in y.iter_mut().enumerate() {
            *y += bv[(i / (ho * wo)) % g.w[0]];
        }
        let f32s = |v: &[f64], shape: &[usize]| {
            let v: Vec<f32> = v.iter().map(|&a| a as f32).collect();
            Tensor::from_vec(v, shape.to_vec()).unwrap()
        };
        let x = f32s(&xv, &g.x).into_parameter();
        let w = f32s(&wv, &g.w).into_parameter();
        let b = f32s(&bv, &[g.w[0]]);
        let out = x.conv2d(&w, Some(&b), g.stride, g.pad).unwrap();
        assert_eq!(out.dims(), [g.x[0], g.w[0], ho, wo]);
        out.backward_with(&f32s(&dyv, out.dims())).unwrap();
        let what = format!("x {:?} w {:?}", g.x, g.w);
        let out = out.to_vec_f64().unwrap();
        let dx_got = x.grad().unwrap().to_vec_f64().unwrap();
        let dw_got = w.grad().unwrap().to_vec_f64().unwrap();
        for (got, want, sizes, name) in [
            (&out, &y, &ym, "y"),
            (&dx_got, &dx, &dxm, "dx"),
            (&dw_got, &dw, &dwm, "dw"),
        ] {
            assert_within_magnitude(got, want, sizes, &format!("{name}, {what}"));
        }
    }
}

/// Runs conv2d forward and backward on a pool of `threads` threads; returns y, dx, dW bits.
fn conv_on_threads(threads: usize, x: [usize; 4], w: [usize; 4], stride: usize) -> Vec<Vec<u32>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut r = SplitMix::new(11);
        let f32_tensor = |r: &mut SplitMix, shape: &[usize]| {
            let n = shape.iter().product();
            let t = Tensor::from_vec(r.vec(n, -1.0, 1.0), shape.to_vec()).unwrap();
            t.to_dtype(DType::F32).unwrap()
        };
        let x = f32_tensor(&mut r, &x).into_parameter();
        let w = f32_tensor(&mut r, &w).into_parameter();
        let y = x.conv2d(&w, None, (stride, stride), (1, 1)).unwrap();
        let dy = f32_tensor(&mut r, y.dims());
        y.backward_with(&dy).unwrap();
        [y, x.grad().unwrap(), w.grad().unwrap()]
            .iter()
            .map(|t| {
                t.to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            })
            .collect()
    })
}

#[test]
fn conv2d_is_bitwise_identical_on_one_and_two_threads() {
    // Batches over two weight-gradient groups, on the generic path (4 channels) and on
    // the AVX-512 one (16 channels) at strides 1 and 2.
    let cases = [
        ([21, 4, 9, 9], [8, 4, 3, 3], 2),
        ([20, 16, 8, 8], [16, 16, 3, 3], 1),
        ([20, 16, 16, 16], [32, 16, 3, 3], 2),
    ];
    for (x, w, stride) in cases {
        let (one, two) = (
            conv_on_threads(1, x, w, stride),
            conv_on_threads(2, x, w, stride),
        );
        for (name, (a, b)) in ["y", "dx", "dW"].iter().zip(one.iter().zip(&two)) {
            assert!(
                a == b,
                "{name} of x {x:?} w {w:?} differs between 1 and 2 threads"
            );
        }
    }
}

/// Direct pooling loop: `reduce` folds the in-image values of each window.
fn pool_direct(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    reduce: impl Fn(&[f64]) -> f64,
) -> Vec<f64> {
    let ho = (h + 2 * p.0 - k.0) / s.0 + 1;
    let wo = (w + 2 * p.1 - k.1) / s.1 + 1;
    let mut out = Vec::new();
    for plane in 0..n * c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut vals = Vec::new();
                for ky in 0..k.0 {
                    for kx in 0..k.1 {
                        let iy = (oy * s.0 + ky) as isize - p.0 as isize;
                        let ix = (ox * s.1 + kx) as isize - p.1 as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            vals.push(x[plane * h * w + iy as usize * w + ix as usize]);
                        }
                    }
                }
                out.push(reduce(&vals));
            }
        }
    }
    out
}

#[test]
fn pooling_matches_direct_loops() {
    let mut r = SplitMix::new(5);
    let dims = [2, 3, 7, 6];
    // All negative, so a padding value of 0 instead of -inf would show up as a max of 0.
    let xv = r.vec(dims.iter().product(), -3.0, -1.0);
    let x = Tensor::from_vec(xv.clone(), dims.to_vec()).unwrap();
    for (k, s, p) in [
        ((2, 2), (2, 2), (0, 0)),
        ((3, 3), (2, 2), (1, 1)),
        ((3, 2), (1, 2), (1, 1)),
    ] {
        let max = pool_direct(&xv, dims, k, s, p, |v| {
            v.iter().cloned().fold(f64::MIN, f64::max)
        });
        let got = x.max_pool2d(k, s, p).unwrap().to_vec_f64().unwrap();
        assert_close(&got, &max, 1e-12, &format!("max_pool {k:?} {s:?} {p:?}"));
        let kk = (k.0 * k.1) as f64;
        let avg = pool_direct(&xv, dims, k, s, p, |v| v.iter().sum::<f64>() / kk);
        let got = x.avg_pool2d(k, s, p).unwrap().to_vec_f64().unwrap();
        assert_close(&got, &avg, 1e-12, &format!("avg_pool {k:?} {s:?} {p:?}"));
    }
}

#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    let x = Tensor::ones([1, 1, 4, 4], DType::F64).into_parameter();
    let y = x.max_pool2d((2, 2), (2, 2), (0, 0)).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    let mut want = vec![0.0; 16];
    for i in [0, 2, 8, 10] {
        want[i] = 1.0; // the top-left of each 2x2 window
    }
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), want);
}

/// Per-channel mean and biased variance of NCHW values, by direct loops.
fn channel_stats(x: &[f64], [n, c, h, w]: [usize; 4]) -> (Vec<f64>, Vec<f64>) {
    let m = (n * h * w) as f64;
    let vals =
        |ch: usize| (0..n).flat_map(move |b| (0..h * w).map(move |i| ((b * c + ch) * h * w) + i));
    let mean: Vec<f64> = (0..c)
        .map(|ch| vals(ch).map(|i| x[i]).sum::<f64>() / m)
        .collect();
    let var = (0..c)
        .map(|ch| vals(ch).map(|i| (x[i] - mean[ch]).powi(2)).sum::<f64>() / m)
        .collect();
    (mean, var)
}

#[test]
fn batch_norm_training_output_and_running_statistics() {
    let dims = [3, 2, 2, 3];
    let mut r = SplitMix::new(9);
    let xv = r.vec(36, -1.0, 4.0);
    let x = Tensor::from_vec(xv.clone(), dims.to_vec()).unwrap();
    let (gv, bv) = (vec![1.5, 0.5], vec![0.25, -1.0]);
    let gamma = Tensor::from_vec(gv.clone(), [2]).unwrap();
    let beta = Tensor::from_vec(bv.clone(), [2]).unwrap();
    let rm = Tensor::from_vec(vec![0.5, -0.5], [2]).unwrap();
    let rv = Tensor::from_vec(vec![2.0, 1.0], [2]).unwrap();
    let eps = 1e-5;
    let y = x
        .batch_norm2d(&gamma, &beta, &rm, &rv, true, 0.1, eps)
        .unwrap();
    let (mean, var) = channel_stats(&xv, dims);
    let want_y: Vec<f64> = (0..36)
        .map(|i| {
            let c = (i / 6) % 2;
            gv[c] * (xv[i] - mean[c]) / (var[c] + eps).sqrt() + bv[c]
        })
        .collect();
    assert_close(&y.to_vec_f64().unwrap(), &want_y, 1e-12, "y");
    // PyTorch's update: momentum 0.1, unbiased variance (m = 18 values per channel).
    let want_rm: Vec<f64> = [0.5, -0.5]
        .iter()
        .zip(&mean)
        .map(|(r, m)| 0.9 * r + 0.1 * m)
        .collect();
    let want_rv: Vec<f64> = [2.0, 1.0]
        .iter()
        .zip(&var)
        .map(|(r, v)| 0.9 * r + 0.1 * v * 18.0 / 17.0)
        .collect();
    assert_close(&rm.to_vec_f64().unwrap(), &want_rm, 1e-12, "running_mean");
    assert_close(&rv.to_vec_f64().unwrap(), &want_rv, 1e-12, "running_var");
}

#[test]
fn batch_norm_f32_stays_accurate_far_from_zero() {
    // |mean| >> std: a naive E[x^2] - E[x]^2 in f32 would lose every digit of the variance.
    let mut r = SplitMix::new(4);
    let dims = [16, 3, 8, 8];
    let xv: Vec<f64> = r
        .vec(dims.iter().product(), -1.0, 1.0)
        .iter()
        .map(|v| 1000.0 + v)
        .collect();
    let x = Tensor::from_vec(xv.clone(), dims.to_vec())
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let xv: Vec<f64> = x.to_vec_f64().unwrap(); // the values as rounded to f32
    let (gamma, beta) = (
        Tensor::ones([3], DType::F32),
        Tensor::zeros([3], DType::F32),
    );
    let (rm, rv) = (
        Tensor::zeros([3], DType::F32),
        Tensor::ones([3], DType::F32),
    );
    let y = x
        .batch_norm2d(&gamma, &beta, &rm, &rv, true, 0.1, 1e-5)
        .unwrap();
    let (mean, var) = channel_stats(&xv, dims);
    let want: Vec<f64> = (0..xv.len())
        .map(|i| {
            let c = (i / 64) % 3;
            (xv[i] - mean[c]) / (var[c] + 1e-5).sqrt()
        })
        .collect();
    assert_close(&y.to_vec_f64().unwrap(), &want, 1e-3, "y");
}

#[test]
fn batch_norm_evaluation_uses_running_statistics() {
    let dims = [2, 3, 2, 2];
    let xv = SplitMix::new(2).vec(24, -2.0, 2.0);
    let x = Tensor::from_vec(xv.clone(), dims.to_vec()).unwrap();
    let gamma = Tensor::from_vec(vec![1.0, 2.0, 0.5], [3]).unwrap();
    let beta = Tensor::from_vec(vec![0.0, 1.0, -1.0], [3]).unwrap();
    let (rmv, rvv): (Vec<f64>, Vec<f64>) = (vec![0.1, -0.2, 0.3], vec![0.5, 1.5, 2.5]);
    let rm = Tensor::from_vec(rmv.clone(), [3]).unwrap();
    let rv = Tensor::from_vec(rvv.clone(), [3]).unwrap();
    let y = x
        .batch_norm2d(&gamma, &beta, &rm, &rv, false, 0.1, 1e-3)
        .unwrap();
    let (gv, bv) = ([1.0, 2.0, 0.5], [0.0, 1.0, -1.0]);
    let want: Vec<f64> = (0..24)
        .map(|i| {
            let c = (i / 4) % 3;
            gv[c] * (xv[i] - rmv[c]) / (rvv[c] + 1e-3).sqrt() + bv[c]
        })
        .collect();
    assert_close(&y.to_vec_f64().unwrap(), &want, 1e-12, "y");
    assert_eq!(
        rm.to_vec::<f64>().unwrap(),
        rmv,
        "evaluation must not touch running_mean"
    );
    assert_eq!(
        rv.to_vec::<f64>().unwrap(),
        rvv,
        "evaluation must not touch running_var"
    );
}
