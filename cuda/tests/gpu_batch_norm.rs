//! batch_norm2d forward (training and eval) against a host implementation, and its
//! backward against central differences of that implementation.

mod common;

use arbor_cuda::ops::batch_norm::*;
use common::*;

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
