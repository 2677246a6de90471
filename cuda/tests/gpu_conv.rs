//! im2col / col2im, cuBLAS GEMM, pooling and batch norm against host references.

mod common;

use arbor_cuda::ops::batch_norm::*;
use arbor_cuda::ops::conv::{col2im, im2col};
use arbor_cuda::ops::gemm::{gemm, GemmShape};
use arbor_cuda::ops::pool::*;
use arbor_cuda::ops::window::Window2d;
use common::*;

/// x[n, c, iy, ix] with iy, ix possibly in the padding (then 0).
fn at(x: &[f64], g: &Window2d, n: usize, c: usize, iy: i64, ix: i64) -> Option<f64> {
    let (h, w) = (g.h as i64, g.w as i64);
    if iy < 0 || ix < 0 || iy >= h || ix >= w {
        return None;
    }
    Some(x[((n * g.c as usize + c) * g.h as usize + iy as usize) * g.w as usize + ix as usize])
}

/// The input positions of output (oy, ox)'s window: (ky, kx, iy, ix).
fn window(g: &Window2d, oy: usize, ox: usize) -> Vec<(usize, usize, i64, i64)> {
    let mut out = Vec::new();
    for ky in 0..g.kh as usize {
        for kx in 0..g.kw as usize {
            let iy = (oy * g.stride_h as usize + ky) as i64 - g.pad_h as i64;
            let ix = (ox * g.stride_w as usize + kx) as i64 - g.pad_w as i64;
            out.push((ky, kx, iy, ix));
        }
    }
    out
}

fn geometries() -> Vec<Window2d> {
    vec![
        Window2d::new([2, 3, 8, 8], [3, 3], [1, 1], [1, 1]).unwrap(),
        Window2d::new([2, 4, 9, 7], [3, 3], [2, 2], [1, 1]).unwrap(),
        Window2d::new([1, 2, 7, 10], [2, 3], [2, 1], [0, 1]).unwrap(),
        Window2d::new([3, 2, 5, 5], [1, 1], [2, 2], [0, 0]).unwrap(),
    ]
}

#[test]
fn im2col_gemm_conv_and_col2im_adjoint() {
    let Some(dev) = gpu("im2col_gemm_conv_and_col2im_adjoint") else {
        return;
    };
    for g in geometries() {
        let mut rng = Rng::new(g.input_len() as u64);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let x_dev = dev.upload(&x).unwrap();
        let mut col = dev.alloc_zeros::<f64>(g.col_len()).unwrap();
        im2col(&dev, &g, &x_dev, &mut col).unwrap();
        let col_host = dev.download(&col).unwrap();
        let (rows, cols) = (g.col_rows(), g.col_cols());
        for n in 0..g.n as usize {
            for c in 0..g.c as usize {
                for oy in 0..g.out_h as usize {
                    for ox in 0..g.out_w as usize {
                        for (ky, kx, iy, ix) in window(&g, oy, ox) {
                            let r = (c * g.kh as usize + ky) * g.kw as usize + kx;
                            let got = col_host[(n * rows + r) * cols + oy * g.out_w as usize + ox];
                            assert_eq!(
                                got,
                                at(&x, &g, n, c, iy, ix).unwrap_or(0.0),
                                "im2col {g:?}"
                            );
                        }
                    }
                }
            }
        }

        // col2im is im2col's adjoint: <im2col(x), u> = <x, col2im(u)>.
        let u = rng.vec(g.col_len(), -1.0, 1.0);
        let u_dev = dev.upload(&u).unwrap();
        let mut back = dev.alloc_zeros::<f64>(g.input_len()).unwrap();
        col2im(&dev, &g, &u_dev, &mut back).unwrap();
        let lhs: f64 = col_host.iter().zip(&u).map(|(a, b)| a * b).sum();
        let rhs: f64 = x
            .iter()
            .zip(dev.download(&back).unwrap())
            .map(|(a, b)| a * b)
            .sum();
        assert!(
            (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
            "col2im adjoint {g:?}: {lhs} vs {rhs}"
        );

        // conv2d = weight [OC, C*KH*KW] x col[n], batched with the weight shared.
        let oc = 5;
        let weight = rng.vec(oc * rows, -1.0, 1.0);
        let weight_dev = dev.upload(&to_t::<f32>(&weight)).unwrap();
        let col32 = dev.upload(&to_t::<f32>(&col_host)).unwrap();
        let mut out = dev.alloc_zeros::<f32>(g.n as usize * oc * cols).unwrap();
        let shape = GemmShape {
            batch: g.n as usize,
            m: oc,
            n: cols,
            k: rows,
            trans_a: false,
            trans_b: false,
            stride_a: 0,
            stride_b: rows * cols,
        };
        gemm(&dev, &shape, &weight_dev, &col32, &mut out, 1.0, 0.0).unwrap();
        let w32 = to_f64(&to_t::<f32>(&weight));
        let x32 = to_f64(&to_t::<f32>(&x));
        let mut want = Vec::new();
        let mut bound = Vec::new();
        for n in 0..g.n as usize {
            for o in 0..oc {
                for oy in 0..g.out_h as usize {
                    for ox in 0..g.out_w as usize {
                        let (mut acc, mut mag) = (0.0, 0.0);
                        for c in 0..g.c as usize {
                            for (ky, kx, iy, ix) in window(&g, oy, ox) {
                                let wv = w32[((o * g.c as usize + c) * g.kh as usize + ky)
                                    * g.kw as usize
                                    + kx];
                                let term = wv * at(&x32, &g, n, c, iy, ix).unwrap_or(0.0);
                                acc += term;
                                mag += term.abs();
                            }
                        }
                        want.push(acc);
                        bound.push(mag);
                    }
                }
            }
        }
        let got = to_f64(&dev.download(&out).unwrap());
        for i in 0..want.len() {
            assert!(
                (got[i] - want[i]).abs() <= 1e-5 * bound[i] + 1e-7,
                "conv {g:?}[{i}]: {} vs {}",
                got[i],
                want[i]
            );
        }
    }
}

#[test]
fn gemm_handles_every_transpose_and_batch_stride() {
    let Some(dev) = gpu("gemm_handles_every_transpose_and_batch_stride") else {
        return;
    };
    let (batch, m, n, k) = (3, 7, 5, 9);
    let mut rng = Rng::new(11);
    for (trans_a, trans_b, share_a) in [
        (false, false, false),
        (true, false, false),
        (false, true, true),
        (true, true, false),
    ] {
        let a = rng.vec(batch * m * k, -1.0, 1.0);
        let b = rng.vec(batch * k * n, -1.0, 1.0);
        let c0 = rng.vec(batch * m * n, -1.0, 1.0);
        let stride_a = if share_a { 0 } else { m * k };
        let shape = GemmShape {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            stride_a,
            stride_b: k * n,
        };
        let (a_dev, b_dev) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
        let mut c_dev = dev.upload(&c0).unwrap();
        gemm(&dev, &shape, &a_dev, &b_dev, &mut c_dev, 2.0, 0.5).unwrap();
        let got = dev.download(&c_dev).unwrap();
        for p in 0..batch {
            let a_at =
                |i: usize, l: usize| a[p * stride_a + if trans_a { l * m + i } else { i * k + l }];
            let b_at =
                |l: usize, j: usize| b[p * k * n + if trans_b { j * k + l } else { l * n + j }];
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k).map(|l| a_at(i, l) * b_at(l, j)).sum();
                    let want = 2.0 * dot + 0.5 * c0[(p * m + i) * n + j];
                    let got = got[(p * m + i) * n + j];
                    assert!(
                        (got - want).abs() < 1e-12,
                        "gemm ta={trans_a} tb={trans_b}: {got} vs {want}"
                    );
                }
            }
        }
    }
    // A too-short operand is an error before anything launches.
    let short = dev.alloc_zeros::<f64>(3).unwrap();
    let mut c = dev.alloc_zeros::<f64>(batch * m * n).unwrap();
    let shape = GemmShape {
        batch,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        stride_a: 0,
        stride_b: 0,
    };
    assert!(gemm(&dev, &shape, &short, &short, &mut c, 1.0, 0.0).is_err());
}

#[test]
fn pooling_matches_host() {
    let Some(dev) = gpu("pooling_matches_host") else {
        return;
    };
    for g in geometries() {
        let mut rng = Rng::new(7 + g.input_len() as u64);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let dy = rng.vec(g.output_len(), -1.0, 1.0);
        let (x_dev, dy_dev) = (dev.upload(&x).unwrap(), dev.upload(&dy).unwrap());
        let mut y = dev.alloc_zeros::<f64>(g.output_len()).unwrap();
        let mut argmax = dev.alloc_zeros::<i32>(g.output_len()).unwrap();
        let mut dx = dev.alloc_zeros::<f64>(g.input_len()).unwrap();
        let (mut want_max, mut want_idx, mut want_avg) = (Vec::new(), Vec::new(), Vec::new());
        let mut want_dx_max = vec![0.0; g.input_len()];
        let mut want_dx_avg = vec![0.0; g.input_len()];
        let area = (g.kh * g.kw) as f64;
        let plane = (g.h * g.w) as usize;
        let mut o = 0;
        for n in 0..g.n as usize {
            for c in 0..g.c as usize {
                for oy in 0..g.out_h as usize {
                    for ox in 0..g.out_w as usize {
                        let (mut best, mut best_idx, mut sum) = (f64::NEG_INFINITY, -1i64, 0.0);
                        for (_, _, iy, ix) in window(&g, oy, ox) {
                            if let Some(v) = at(&x, &g, n, c, iy, ix) {
                                let flat = iy * g.w as i64 + ix;
                                if best_idx < 0 || v > best {
                                    (best, best_idx) = (v, flat);
                                }
                                sum += v;
                                want_dx_avg[(n * g.c as usize + c) * plane + flat as usize] +=
                                    dy[o] / area;
                            }
                        }
                        want_max.push(best);
                        want_idx.push(best_idx as i32);
                        want_avg.push(sum / area);
                        want_dx_max[(n * g.c as usize + c) * plane + best_idx as usize] += dy[o];
                        o += 1;
                    }
                }
            }
        }
        max_pool2d_fwd(&dev, &g, &x_dev, &mut y, &mut argmax).unwrap();
        assert_eq!(dev.download(&y).unwrap(), want_max, "max_pool2d {g:?}");
        assert_eq!(
            dev.download(&argmax).unwrap(),
            want_idx,
            "max_pool2d argmax {g:?}"
        );
        max_pool2d_bwd(&dev, &g, &dy_dev, &argmax, &mut dx).unwrap();
        assert_close(
            "max_pool2d_bwd",
            &dev.download(&dx).unwrap(),
            &want_dx_max,
            1e-12,
            1e-15,
        );
        avg_pool2d_fwd(&dev, &g, &x_dev, &mut y).unwrap();
        assert_close(
            "avg_pool2d",
            &dev.download(&y).unwrap(),
            &want_avg,
            1e-12,
            1e-15,
        );
        avg_pool2d_bwd(&dev, &g, &dy_dev, &mut dx).unwrap();
        assert_close(
            "avg_pool2d_bwd",
            &dev.download(&dx).unwrap(),
            &want_dx_avg,
            1e-12,
            1e-15,
        );
    }

    let (planes, hw) = (2 * 64, 64);
    let x = Rng::new(5).vec(planes * hw, -1.0, 1.0);
    let mut y = dev.alloc_zeros::<f32>(planes).unwrap();
    global_avg_pool_fwd(
        &dev,
        &dev.upload(&to_t::<f32>(&x)).unwrap(),
        &mut y,
        planes,
        hw,
    )
    .unwrap();
    let x32 = to_f64(&to_t::<f32>(&x));
    let want: Vec<f64> = x32
        .chunks(hw)
        .map(|p| p.iter().sum::<f64>() / hw as f64)
        .collect();
    assert_close(
        "global_avg_pool",
        &to_f64(&dev.download(&y).unwrap()),
        &want,
        1e-5,
        1e-6,
    );
    let dy: Vec<f32> = (0..planes).map(|p| p as f32).collect();
    let mut dx = dev.alloc_zeros::<f32>(planes * hw).unwrap();
    global_avg_pool_bwd(&dev, &dev.upload(&dy).unwrap(), &mut dx, planes, hw).unwrap();
    let want: Vec<f64> = (0..planes * hw)
        .map(|i| (i / hw) as f64 / hw as f64)
        .collect();
    assert_close(
        "global_avg_pool_bwd",
        &to_f64(&dev.download(&dx).unwrap()),
        &want,
        1e-7,
        0.0,
    );
}

/// Host batch norm (training) forward, f64: y, mean, biased var per channel.
fn host_bn(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    s: BatchNormShape,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (s.n * s.hw) as f64;
    let idx = |n: usize, c: usize, j: usize| (n * s.c + c) * s.hw + j;
    let mut y = vec![0.0; x.len()];
    let (mut means, mut vars) = (Vec::new(), Vec::new());
    for c in 0..s.c {
        let vals: Vec<f64> = (0..s.n)
            .flat_map(|n| (0..s.hw).map(move |j| (n, j)))
            .map(|(n, j)| x[idx(n, c, j)])
            .collect();
        let mean = vals.iter().sum::<f64>() / m;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
        for n in 0..s.n {
            for j in 0..s.hw {
                y[idx(n, c, j)] =
                    (x[idx(n, c, j)] - mean) / (var + eps).sqrt() * gamma[c] + beta[c];
            }
        }
        means.push(mean);
        vars.push(var);
    }
    (y, means, vars)
}

#[test]
fn batch_norm_matches_host_and_finite_differences() {
    let Some(dev) = gpu("batch_norm_matches_host_and_finite_differences") else {
        return;
    };
    let s = BatchNormShape { n: 4, c: 3, hw: 10 };
    let len = s.n * s.c * s.hw;
    let mut rng = Rng::new(21);
    let x = rng.vec(len, -2.0, 3.0);
    let dy = rng.vec(len, -1.0, 1.0);
    let gamma = rng.vec(s.c, 0.5, 1.5);
    let beta = rng.vec(s.c, -0.5, 0.5);
    let (eps, momentum) = (1e-5, 0.1);
    let up = |v: &[f64]| dev.upload(v).unwrap();
    let (x_dev, dy_dev, gamma_dev, beta_dev) = (up(&x), up(&dy), up(&gamma), up(&beta));
    let mut y = dev.alloc_zeros::<f64>(len).unwrap();
    let (mut mean, mut invstd) = (
        dev.alloc_zeros::<f64>(s.c).unwrap(),
        dev.alloc_zeros::<f64>(s.c).unwrap(),
    );
    let mut running_mean = up(&[0.5, 0.0, -0.5]);
    let mut running_var = up(&[1.0, 2.0, 0.5]);
    batch_norm2d_train_fwd(
        &dev,
        s,
        &x_dev,
        &gamma_dev,
        &beta_dev,
        &mut y,
        &mut mean,
        &mut invstd,
        &mut running_mean,
        &mut running_var,
        momentum,
        eps,
    )
    .unwrap();
    let (want_y, want_mean, want_var) = host_bn(&x, &gamma, &beta, s, eps);
    assert_close("bn y", &dev.download(&y).unwrap(), &want_y, 1e-12, 1e-12);
    assert_close(
        "bn mean",
        &dev.download(&mean).unwrap(),
        &want_mean,
        1e-12,
        1e-14,
    );
    let want_invstd: Vec<f64> = want_var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    assert_close(
        "bn invstd",
        &dev.download(&invstd).unwrap(),
        &want_invstd,
        1e-12,
        0.0,
    );
    let m = (s.n * s.hw) as f64;
    let want_rm: Vec<f64> = [0.5, 0.0, -0.5]
        .iter()
        .zip(&want_mean)
        .map(|(r, b)| 0.9 * r + 0.1 * b)
        .collect();
    let want_rv: Vec<f64> = [1.0, 2.0, 0.5]
        .iter()
        .zip(&want_var)
        .map(|(r, v)| 0.9 * r + 0.1 * v * m / (m - 1.0))
        .collect();
    assert_close(
        "bn running_mean",
        &dev.download(&running_mean).unwrap(),
        &want_rm,
        1e-12,
        1e-14,
    );
    assert_close(
        "bn running_var",
        &dev.download(&running_var).unwrap(),
        &want_rv,
        1e-12,
        0.0,
    );

    // Backward against central differences of L = sum(dy * y) through the host forward.
    let (mut dx, mut dgamma, mut dbeta) = (
        dev.alloc_zeros::<f64>(len).unwrap(),
        dev.alloc_zeros::<f64>(s.c).unwrap(),
        dev.alloc_zeros::<f64>(s.c).unwrap(),
    );
    batch_norm2d_bwd(
        &dev,
        s,
        &x_dev,
        &dy_dev,
        &gamma_dev,
        &mean,
        &invstd,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        true,
    )
    .unwrap();
    let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
        host_bn(x, gamma, beta, s, eps)
            .0
            .iter()
            .zip(&dy)
            .map(|(a, b)| a * b)
            .sum()
    };
    let h = 1e-6;
    let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    let want_dx: Vec<f64> = (0..len)
        .map(|i| {
            fd(&|d| {
                let mut xp = x.clone();
                xp[i] += d;
                loss(&xp, &gamma, &beta)
            })
        })
        .collect();
    let want_dgamma: Vec<f64> = (0..s.c)
        .map(|c| {
            fd(&|d| {
                let mut gp = gamma.clone();
                gp[c] += d;
                loss(&x, &gp, &beta)
            })
        })
        .collect();
    let want_dbeta: Vec<f64> = (0..s.c)
        .map(|c| {
            fd(&|d| {
                let mut bp = beta.clone();
                bp[c] += d;
                loss(&x, &gamma, &bp)
            })
        })
        .collect();
    assert_close("bn dx", &dev.download(&dx).unwrap(), &want_dx, 1e-6, 1e-8);
    assert_close(
        "bn dgamma",
        &dev.download(&dgamma).unwrap(),
        &want_dgamma,
        1e-6,
        1e-8,
    );
    assert_close(
        "bn dbeta",
        &dev.download(&dbeta).unwrap(),
        &want_dbeta,
        1e-6,
        1e-8,
    );

    // Eval: running statistics, and the backward treats them as constants.
    batch_norm2d_eval_fwd(
        &dev,
        s,
        &x_dev,
        &gamma_dev,
        &beta_dev,
        &running_mean,
        &running_var,
        &mut y,
        &mut mean,
        &mut invstd,
        eps,
    )
    .unwrap();
    let want_y: Vec<f64> = (0..len)
        .map(|i| {
            let c = (i / s.hw) % s.c;
            (x[i] - want_rm[c]) / (want_rv[c] + eps).sqrt() * gamma[c] + beta[c]
        })
        .collect();
    assert_close(
        "bn eval y",
        &dev.download(&y).unwrap(),
        &want_y,
        1e-12,
        1e-12,
    );
    batch_norm2d_bwd(
        &dev,
        s,
        &x_dev,
        &dy_dev,
        &gamma_dev,
        &mean,
        &invstd,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        false,
    )
    .unwrap();
    let want_dx: Vec<f64> = (0..len)
        .map(|i| dy[i] * gamma[(i / s.hw) % s.c] / (want_rv[(i / s.hw) % s.c] + eps).sqrt())
        .collect();
    assert_close(
        "bn eval dx",
        &dev.download(&dx).unwrap(),
        &want_dx,
        1e-12,
        1e-14,
    );
}
