//! Unit tests of the conv kernels: the im2col helpers, and the direct kernels of every
//! SIMD level this CPU supports against the generic path.
use super::*;
use crate::cpu::simd::Level;

/// `f(level)` for every level this CPU supports, named in a failure.
fn at_every_level(f: impl Fn(Level)) {
    for level in Level::supported() {
        eprintln!("level {level}");
        f(level);
    }
}

/// The stride-phase input gradient of `level`.
fn phase_input_grad(level: Level) -> F32Kernel {
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => direct::phases::input_grad::<direct::Avx512>,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => direct::phases::input_grad::<direct::Avx2>,
        _ => direct::phases::input_grad::<direct::Portable>,
    }
}

#[test]
fn valid_range_skips_padding() {
    // 5 inputs, pad 1, stride 1, 5 outputs: tap 0 reads x[-1] at o = 0.
    assert_eq!(valid_range(0, 1, 1, 5, 5), (1, 5));
    assert_eq!(valid_range(1, 1, 1, 5, 5), (0, 5));
    assert_eq!(valid_range(2, 1, 1, 5, 5), (0, 4));
    // stride 2, pad 2, 6 inputs, 4 outputs: o*2 + tap - 2 in 0..6.
    assert_eq!(valid_range(0, 2, 2, 6, 4), (1, 4));
    // A tap that only ever reads padding.
    assert_eq!(valid_range(0, 3, 1, 1, 2), (2, 2));
}

#[test]
fn im2col_then_col2im_counts_uses() {
    // col2im(im2col(1)) counts how many columns read each pixel.
    let p = Conv2dParams {
        batch: 1,
        c_in: 1,
        h_in: 3,
        w_in: 3,
        c_out: 1,
        kh: 3,
        kw: 3,
        stride: (1, 1),
        padding: (1, 1),
    };
    let (k, pp) = col_dims(&p);
    let mut col = vec![0.0f64; k * pp];
    im2col(&[1.0; 9], &p, &mut col);
    let mut uses = vec![0.0; 9];
    col2im(&col, &p, &mut uses);
    assert_eq!(uses, vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
}

/// The direct path of each level against the generic one, in f32, on geometries that
/// exercise its every branch (at 16 lanes): both source layouts at strides 1 and 2,
/// stride-1 and col2im input grads, tiles with one valid vector, row and vector tails.
#[test]
fn direct_path_matches_generic_path() {
    at_every_level(direct_matches_generic_path);
}

fn direct_matches_generic_path(level: Level) {
    let [forward, input_grad, weight_grad] = direct_kernels(level);
    let geometries = [
        // (batch, c_in, h, w, c_out, kh, kw, stride, padding)
        (3, 16, 32, 32, 16, 3, 3, (1, 1), (1, 1)),
        (9, 32, 16, 16, 32, 3, 3, (1, 1), (1, 1)),
        (2, 64, 8, 8, 64, 3, 3, (1, 1), (1, 1)),
        (2, 16, 32, 32, 32, 3, 3, (2, 2), (1, 1)),
        (2, 3, 32, 32, 16, 3, 3, (1, 1), (1, 1)),
        (2, 5, 6, 17, 7, 3, 2, (1, 1), (2, 0)),
        (2, 4, 8, 8, 13, 1, 1, (1, 1), (0, 0)),
        (1, 6, 14, 16, 40, 5, 3, (2, 1), (2, 1)),
        (1, 3, 4, 16, 5, 4, 5, (1, 1), (3, 2)),
        (2, 16, 15, 14, 13, 2, 2, (2, 2), (1, 1)),
        (1, 32, 7, 16, 24, 3, 1, (2, 1), (0, 0)),
        // Stride 2 onto 8-wide outputs (the weight grad's chunks of output rows split
        // each image), odd inputs with a chunk spanning images, channels not a multiple
        // of any tile's rows.
        (3, 32, 16, 16, 64, 3, 3, (2, 2), (1, 1)),
        (9, 16, 15, 15, 20, 3, 3, (2, 2), (1, 1)),
        (2, 16, 31, 31, 13, 3, 3, (2, 2), (1, 1)),
    ];
    let mut rand = uniform(1);
    for geometry in geometries {
        let p = params(geometry);
        let (batch, c_in, h_in, w_in, c_out, kh, kw, _, _) = geometry;
        let x = rand(batch * c_in * h_in * w_in);
        let w = rand(c_out * c_in * kh * kw);
        let g = rand(batch * c_out * p.h_out() * p.w_out());
        let close = |fast: Vec<f32>, slow: Vec<f32>, what: &str| {
            assert_eq!(fast.len(), slow.len());
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{level} {what} {p:?} [{i}]: {a} vs {b}"
                );
            }
        };
        let fast = forward(&x, &w, &p).expect("whole vectors");
        close(fast, generic_conv2d(&x, &w, &p), "y");
        let fast = input_grad(&g, &w, &p).expect("whole vectors");
        close(fast, generic_input_grad(&g, &w, &p), "dx");
        if let Some(fast) = weight_grad(&g, &x, &p) {
            close(fast, generic_weight_grad(&g, &x, &p), "dW");
        }
    }
}

/// Each thread keeps a direct pass's buffers for the next call of the same pass and sizes
/// (`direct::lend`), and they must carry nothing over between passes: at stride 2 on an
/// odd image (no stride phases) the input grad adds `W^T dy` into its image copy,
/// padding entries included, while the forward's copy of the same sizes relies on its
/// padding being zero. On one thread, so that each pass finds the one before it's
/// buffers: forward, input grad, forward again and weight grad, twice, each against the
/// generic path.
#[test]
fn kept_buffers_carry_nothing_between_passes() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let geometry = (3, 16, 15, 15, 16, 3, 3, (2, 2), (1, 1));
    let p = params(geometry);
    let mut rand = uniform(11);
    let x = rand(3 * 16 * 15 * 15);
    let w = rand(16 * 16 * 9);
    let g = rand(3 * 16 * p.h_out() * p.w_out());
    let want = [
        generic_conv2d(&x, &w, &p),
        generic_input_grad(&g, &w, &p),
        generic_weight_grad(&g, &x, &p),
    ];
    at_every_level(|level| {
        let kernels = direct_kernels(level);
        pool.install(|| {
            for round in 0..2 {
                for pass in [0, 1, 0, 2] {
                    let (a, b) = match pass {
                        0 => (&x, &w),
                        1 => (&g, &w),
                        _ => (&g, &x),
                    };
                    let Some(got) = kernels[pass](a, b, &p) else {
                        continue;
                    };
                    for (i, (a, b)) in got.iter().zip(&want[pass]).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "{level} round {round} pass {pass} [{i}]: {a} vs {b}"
                        );
                    }
                }
            }
        })
    });
}

/// The forward with a bias-and-ReLU epilogue (batch norm folded in) at every level
/// against the generic product followed by the bias and the clamp, with and without
/// the clamp; and [`conv2d_bias_act`] (whichever path the active level takes) too.
#[test]
fn forward_epilogue_matches_bias_then_relu() {
    at_every_level(|level| {
        let forward = direct_forward_then(level);
        let mut rand = uniform(7);
        for geometry in [
            (2, 16, 32, 32, 16, 3, 3, (1, 1), (1, 1)),
            (2, 16, 32, 32, 32, 3, 3, (2, 2), (1, 1)),
            (2, 5, 6, 17, 7, 3, 2, (1, 1), (2, 0)),
        ] {
            let p = params(geometry);
            let (batch, c_in, h_in, w_in, c_out, kh, kw, _, _) = geometry;
            let (x, w, bias) = (
                rand(batch * c_in * h_in * w_in),
                rand(c_out * c_in * kh * kw),
                rand(c_out),
            );
            let plane = p.h_out() * p.w_out();
            for relu in [false, true] {
                let mut want = generic_conv2d(&x, &w, &p);
                for (i, v) in want.iter_mut().enumerate() {
                    *v += bias[(i / plane) % c_out];
                    if relu {
                        *v = v.max(0.0);
                    }
                }
                let epilogue = direct::Epilogue {
                    bias: Some(&bias),
                    relu,
                };
                let direct = forward(&x, &w, &p, epilogue).expect("whole vectors");
                let op = conv2d_bias_act(&x, &w, &bias, relu, &p);
                for (what, got) in [("direct", direct), ("op", op)] {
                    assert_eq!(got.len(), want.len());
                    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "{level} {what} relu={relu} {p:?} [{i}]: {a} vs {b}"
                        );
                    }
                }
                if relu {
                    assert!(want.contains(&0.0), "the clamp was exercised");
                }
            }
        }
    });
}

/// The same comparison on random geometries (1 to 32 channels, kernels up to 4x4,
/// strides up to 3, paddings up to 2), for whichever passes each level's direct path
/// takes.
#[test]
fn direct_path_matches_generic_path_on_random_geometries() {
    at_every_level(direct_matches_generic_path_on_random_geometries);
}

fn direct_matches_generic_path_on_random_geometries(level: Level) {
    let [forward, input_grad, weight_grad] = direct_kernels(level);
    let mut state = 12345u64;
    let mut below = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % n
    };
    let mut taken = [0; 3];
    for _ in 0..1000 {
        let p = Conv2dParams {
            batch: 1 + below(3),
            c_in: [1, 3, 16, 32][below(4)],
            h_in: 1 + below(20),
            w_in: 1 + below(34),
            c_out: 1 + below(20),
            kh: 1 + below(4),
            kw: 1 + below(4),
            stride: (1 + below(3), 1 + below(3)),
            padding: (below(3), below(3)),
        };
        if p.kh > p.h_in + 2 * p.padding.0 || p.kw > p.w_in + 2 * p.padding.1 {
            continue;
        }
        let mut values =
            |n: usize| -> Vec<f32> { (0..n).map(|_| below(2001) as f32 / 1000.0 - 1.0).collect() };
        let x = values(p.batch * p.c_in * p.h_in * p.w_in);
        let w = values(p.c_out * p.c_in * p.kh * p.kw);
        let g = values(p.batch * p.c_out * p.h_out() * p.w_out());
        let close = |fast: Vec<f32>, slow: Vec<f32>, what: &str| {
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{level} {what} {p:?} [{i}]: {a} vs {b}"
                );
            }
        };
        if let Some(fast) = forward(&x, &w, &p) {
            close(fast, generic_conv2d(&x, &w, &p), "y");
            taken[0] += 1;
        }
        if let Some(fast) = input_grad(&g, &w, &p) {
            close(fast, generic_input_grad(&g, &w, &p), "dx");
            taken[1] += 1;
        }
        if let Some(fast) = weight_grad(&g, &x, &p) {
            close(fast, generic_weight_grad(&g, &x, &p), "dW");
            taken[2] += 1;
        }
    }
    // Enough of each pass took the fast path for the comparison to mean something.
    assert!(
        taken.iter().all(|&n| n > 50),
        "{level}: fast path taken {taken:?} times"
    );
}

/// The stride-phase input gradient of each level against the generic one, on geometries
/// it must take: both source layouts, strides (2, 2), (2, 1), (1, 2) and 3, paddings 0
/// to 2, even and odd kernels, channel counts not multiples of 8.
#[test]
fn stride_phase_input_grad_matches_generic_path() {
    at_every_level(stride_phase_matches_generic_path);
}

fn stride_phase_matches_generic_path(level: Level) {
    let phase_input_grad = phase_input_grad(level);
    let geometries = [
        // (batch, c_in, h, w, c_out, kh, kw, stride, padding)
        (2, 16, 32, 32, 32, 3, 3, (2, 2), (1, 1)),
        (2, 32, 16, 16, 64, 3, 3, (2, 2), (1, 1)),
        (1, 5, 16, 8, 7, 2, 2, (2, 2), (0, 0)),
        (1, 3, 16, 32, 9, 5, 3, (2, 2), (2, 1)),
        (1, 6, 16, 8, 5, 3, 3, (2, 1), (1, 1)),
        (1, 4, 8, 32, 3, 3, 4, (1, 2), (1, 1)),
        (1, 7, 24, 24, 6, 5, 5, (3, 3), (2, 2)),
        (2, 9, 32, 32, 11, 4, 4, (2, 2), (1, 1)),
        (1, 8, 16, 32, 8, 3, 2, (2, 2), (1, 0)),
    ];
    let mut rand = uniform(7);
    for geometry in geometries {
        let p = params(geometry);
        let (batch, c_in, _, _, c_out, kh, kw, _, _) = geometry;
        let w = rand(c_out * c_in * kh * kw);
        let g = rand(batch * c_out * p.h_out() * p.w_out());
        let fast = phase_input_grad(&g, &w, &p).expect("takes the stride phases");
        let slow = generic_input_grad(&g, &w, &p);
        assert_eq!(fast.len(), slow.len());
        for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{level} dx {p:?} [{i}]: {a} vs {b}"
            );
        }
    }
}

/// `(batch, c_in, h, w, c_out, kh, kw, stride, padding)`, as the tables above list them.
type Geometry = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    (usize, usize),
    (usize, usize),
);

fn params((batch, c_in, h_in, w_in, c_out, kh, kw, stride, padding): Geometry) -> Conv2dParams {
    Conv2dParams {
        batch,
        c_in,
        h_in,
        w_in,
        c_out,
        kh,
        kw,
        stride,
        padding,
    }
}

/// Values in `[-1, 1)` from a linear congruential generator seeded with `seed`.
fn uniform(mut seed: u32) -> impl FnMut(usize) -> Vec<f32> {
    move |n| {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1 << 23) as f32 - 1.0
            })
            .collect()
    }
}
