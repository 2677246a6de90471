//! Winograd F(2x2, 3x3) against the f64 im2col path, the f32 im2col path and the direct
//! kernels, at every SIMD level this CPU has.
//!
//! Two kinds of check:
//! - exact: on small integers (and kernels of halves) every value Winograd computes, its
//!   transforms included, is a multiple of 1/8 below 2^20, so f32 holds it exactly and
//!   the result must equal the f64 product bit for bit. A wrong constant,
//!   sign or index cannot hide in a tolerance here.
//! - rounding: on values in [-1, 1), against the worst-case bound of F(2x2, 3x3)'s
//!   rounding error. Each output is `sum_e a_e sum_ci U[e, ci] V[e, ci]`, computed with 2
//!   roundings per `V` (two add stages), 1 per `U` (rounded once from f64), `c_in` in the
//!   channel sum and 4 in the output transform: the error is at most `gamma_(c_in + 7)`
//!   times `S = sum_e |a_e| sum_ci |U||V|`. With `|w| <= wmax` and `|x| <= xmax`, the 1-D
//!   sum `sum_e |A^T[o, e]| (|G| 1)_e (|B^T| 1)_e` is 8 for both outputs `o` (against 3 for
//!   the direct sum), so `S <= 64 c_in wmax xmax` and the error is at most about
//!   `(c_in + 7) u 64 c_in wmax xmax`; `winograd_bound` rounds the 7 up to 9. The f32
//!   im2col and direct results carry their own error, at most `gamma_(9 c_in)` times
//!   `9 c_in wmax xmax`, so comparisons with them allow both.
use super::super::{generic_conv2d, generic_input_grad, generic_weight_grad};
use super::*;
use crate::cpu::simd::Level;

/// The f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

fn winograd_bound(channels: usize, wmax: f64, xmax: f64) -> f64 {
    let c = channels as f64;
    (c + 9.0) * U * 64.0 * c * wmax * xmax
}

fn direct_bound(channels: usize, wmax: f64, xmax: f64) -> f64 {
    let k = 9.0 * channels as f64;
    k * U * k * wmax * xmax
}

/// The weight gradient's bound (see `weight.rs`): `gamma_(T_g + groups + 6)` times
/// `36 T gmax xmax`, `T` the batch's tiles and `T_g` a group's.
fn weight_grad_bound(p: &Conv2dParams, gmax: f64, xmax: f64) -> f64 {
    tiled_weight_grad_bound(p, gmax, xmax, (2, 6.0, 36.0))
}

/// The weight gradient's bound for tiles of `out x out` outputs, with `fixed` roundings
/// beside the sums over tiles and groups and at most `per_tile max|dy| max|x|` added per
/// tile and channel pair.
fn tiled_weight_grad_bound(
    p: &Conv2dParams,
    gmax: f64,
    xmax: f64,
    (out, fixed, per_tile): (usize, f64, f64),
) -> f64 {
    let per_image = (p.h_in.div_ceil(out) * p.w_in.div_ceil(out)) as f64;
    let group = super::super::WEIGHT_GRAD_GROUP;
    let (tiles, groups) = (p.batch as f64 * per_image, p.batch.div_ceil(group) as f64);
    let roundings = p.batch.min(group) as f64 * per_image + groups + fixed;
    roundings * U * per_tile * tiles * gmax * xmax
}

/// The f32 im2col and direct weight gradients' bound: `n = batch h w` terms of at most
/// `gmax xmax` each, each through at most `n` additions.
fn direct_weight_grad_bound(p: &Conv2dParams, gmax: f64, xmax: f64) -> f64 {
    let n = (p.batch * p.h_in * p.w_in) as f64;
    n * U * n * gmax * xmax
}

/// The Winograd forward, input grad and weight grad of `level`.
fn kernels(level: Level) -> [super::super::F32Kernel; 3] {
    super::super::winograd_kernels(level)
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()))
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// A linear congruential generator: `below(n)` is in `0..n`.
fn generator(mut state: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % n
    }
}

/// `n` values in [-1, 1] on a 0.001 grid.
fn random_values(below: &mut impl FnMut(usize) -> usize, n: usize) -> Vec<f32> {
    (0..n).map(|_| below(2001) as f32 / 1000.0 - 1.0).collect()
}

/// A random geometry Winograd takes: channels up to 64 (vector multiples and not), odd
/// and even sizes from 1, batches from 1.
fn random_geometry(below: &mut impl FnMut(usize) -> usize) -> Conv2dParams {
    let channels = [1, 3, 5, 8, 16, 17, 32, 64];
    Conv2dParams {
        batch: 1 + below(3),
        c_in: channels[below(channels.len())],
        h_in: 1 + below(19),
        w_in: 1 + below(35),
        c_out: channels[below(channels.len())],
        kh: 3,
        kw: 3,
        stride: (1, 1),
        padding: (1, 1),
    }
}

#[test]
fn takes_only_stride_one_pad_one_3x3() {
    let p = |kh, stride, padding| Conv2dParams {
        batch: 1,
        c_in: 16,
        h_in: 8,
        w_in: 8,
        c_out: 16,
        kh,
        kw: kh,
        stride,
        padding,
    };
    assert!(takes(&p(3, (1, 1), (1, 1))));
    assert!(!takes(&p(3, (2, 2), (1, 1))));
    assert!(!takes(&p(3, (1, 1), (0, 0))));
    assert!(!takes(&p(5, (1, 1), (1, 1))));
    for level in Level::supported() {
        let [forward, input_grad, weight_grad] = kernels(level);
        let q = p(3, (2, 2), (1, 1));
        let (x, w) = (vec![0.0; 16 * 64], vec![0.0; 16 * 16 * 9]);
        assert!(forward(&x, &w, &q).is_none() && input_grad(&x, &w, &q).is_none());
        let dy = vec![0.0; 16 * 16];
        assert!(weight_grad(&dy, &x, &q).is_none());
    }
}

#[test]
fn exact_on_small_integers() {
    for level in Level::supported() {
        let [forward, input_grad, weight_grad] = kernels(level);
        let mut below = generator(99);
        for _ in 0..60 {
            let p = random_geometry(&mut below);
            let mut ints = |n: usize, scale: f32| -> Vec<f32> {
                (0..n).map(|_| (below(9) as f32 - 4.0) * scale).collect()
            };
            let x = ints(p.batch * p.c_in * p.h_in * p.w_in, 1.0);
            let w = ints(p.c_out * p.c_in * 9, 0.5);
            let g = ints(p.batch * p.c_out * p.h_in * p.w_in, 1.0);
            let exact = |fast: Vec<f32>, slow: Vec<f64>, what: &str| {
                assert_eq!(fast.len(), slow.len());
                for (i, (&a, &b)) in fast.iter().zip(&slow).enumerate() {
                    assert_eq!(f64::from(a), b, "{level} {what} {p:?} [{i}]");
                }
            };
            let (xd, wd, gd) = (widen(&x), widen(&w), widen(&g));
            let y = forward(&x, &w, &p).expect("takes 3x3 stride 1 pad 1");
            exact(y, generic_conv2d(&xd, &wd, &p), "y");
            let dx = input_grad(&g, &w, &p).expect("takes 3x3 stride 1 pad 1");
            exact(dx, generic_input_grad(&gd, &wd, &p), "dx");
            // `G^T dU G` scales by halves and quarters: exact too, on integers.
            let dw = weight_grad(&g, &x, &p).expect("takes 3x3 stride 1 pad 1");
            exact(dw, generic_weight_grad(&gd, &xd, &p), "dW");
        }
    }
}

/// Asserts every `fast[i]` is within `tol` of `slow[i]`.
fn within(fast: &[f32], slow: &[f64], tol: f64, what: &str) {
    assert_eq!(fast.len(), slow.len(), "{what}");
    for (i, (&a, &b)) in fast.iter().zip(slow).enumerate() {
        let err = (f64::from(a) - b).abs();
        assert!(
            err <= tol,
            "{what} [{i}]: {a} vs {b}, error {err:e} > {tol:e}"
        );
    }
}

#[test]
fn within_its_rounding_bound_on_random_geometries() {
    for level in Level::supported() {
        let [forward, input_grad, weight_grad] = kernels(level);
        let [direct_forward, direct_input_grad, direct_weight_grad] =
            super::super::direct_kernels(level);
        let mut below = generator(2024);
        let mut direct_taken = 0;
        for _ in 0..150 {
            let p = random_geometry(&mut below);
            let mut values = |n: usize| random_values(&mut below, n);
            let x = values(p.batch * p.c_in * p.h_in * p.w_in);
            let w = values(p.c_out * p.c_in * 9);
            let g = values(p.batch * p.c_out * p.h_in * p.w_in);
            let (xmax, wmax, gmax) = (max_abs(&x), max_abs(&w), max_abs(&g));
            let what = |pass: &str, against: &str| format!("{level} {pass} vs {against} {p:?}");

            let y = forward(&x, &w, &p).expect("takes 3x3 stride 1 pad 1");
            let bound = winograd_bound(p.c_in, wmax, xmax);
            let f64_y = generic_conv2d(&widen(&x), &widen(&w), &p);
            within(&y, &f64_y, bound, &what("y", "f64 im2col"));
            let tol = bound + direct_bound(p.c_in, wmax, xmax);
            let f32_y = widen(&generic_conv2d(&x, &w, &p));
            within(&y, &f32_y, tol, &what("y", "f32 im2col"));

            let dx = input_grad(&g, &w, &p).expect("takes 3x3 stride 1 pad 1");
            let bound = winograd_bound(p.c_out, wmax, gmax);
            let f64_dx = generic_input_grad(&widen(&g), &widen(&w), &p);
            within(&dx, &f64_dx, bound, &what("dx", "f64 im2col"));
            let tol = bound + direct_bound(p.c_out, wmax, gmax);
            let f32_dx = widen(&generic_input_grad(&g, &w, &p));
            within(&dx, &f32_dx, tol, &what("dx", "f32 im2col"));

            let dw = weight_grad(&g, &x, &p).expect("takes 3x3 stride 1 pad 1");
            let bound = weight_grad_bound(&p, gmax, xmax);
            let f64_dw = generic_weight_grad(&widen(&g), &widen(&x), &p);
            within(&dw, &f64_dw, bound, &what("dW", "f64 im2col"));
            let tol = bound + direct_weight_grad_bound(&p, gmax, xmax);
            let f32_dw = widen(&generic_weight_grad(&g, &x, &p));
            within(&dw, &f32_dw, tol, &what("dW", "f32 im2col"));

            if let Some(direct_y) = direct_forward(&x, &w, &p) {
                let tol = winograd_bound(p.c_in, wmax, xmax) + direct_bound(p.c_in, wmax, xmax);
                within(&y, &widen(&direct_y), tol, &what("y", "direct"));
                direct_taken += 1;
            }
            if let Some(direct_dx) = direct_input_grad(&g, &w, &p) {
                let tol = winograd_bound(p.c_out, wmax, gmax) + direct_bound(p.c_out, wmax, gmax);
                within(&dx, &widen(&direct_dx), tol, &what("dx", "direct"));
            }
            if let Some(direct_dw) = direct_weight_grad(&g, &x, &p) {
                let tol =
                    weight_grad_bound(&p, gmax, xmax) + direct_weight_grad_bound(&p, gmax, xmax);
                within(&dw, &widen(&direct_dw), tol, &what("dW", "direct"));
            }
        }
        // The direct kernels need whole vectors of outputs, so only some geometries.
        assert!(direct_taken > 10, "{level}: direct took {direct_taken}");
    }
}

/// The ResNet-32 shapes (batch 3) against the f64 path by both tilings, and the observed
/// errors printed beside the bounds and the direct kernel's, to see how loose they are.
#[test]
fn resnet_shapes_within_bound() {
    for level in Level::supported() {
        let [forward, _, _] = kernels(level);
        let [direct_forward, _, _] = super::super::direct_kernels(level);
        let mut below = generator(5);
        for (c, size) in [(16, 32), (32, 16), (64, 8)] {
            let p = Conv2dParams {
                batch: 3,
                c_in: c,
                h_in: size,
                w_in: size,
                c_out: c,
                kh: 3,
                kw: 3,
                stride: (1, 1),
                padding: (1, 1),
            };
            let mut values = |n: usize| random_values(&mut below, n);
            let x = values(p.batch * c * size * size);
            let w = values(c * c * 9);
            let reference = generic_conv2d(&widen(&x), &widen(&w), &p);
            let max_err = |y: &[f32]| {
                y.iter()
                    .zip(&reference)
                    .fold(0.0f64, |m, (&a, &b)| m.max((f64::from(a) - b).abs()))
            };
            let y = forward(&x, &w, &p).expect("takes 3x3 stride 1 pad 1");
            let bound = winograd_bound(c, max_abs(&w), max_abs(&x));
            within(&y, &reference, bound, &format!("{level} {p:?}"));
            let direct = direct_forward(&x, &w, &p).expect("whole vectors");
            let [forward4, _, _] = super::super::winograd4_kernels(level);
            let y4 = forward4(&x, &w, &p).expect("takes 3x3 stride 1 pad 1");
            let bound4 = bound4(c, max_abs(&w), max_abs(&x));
            within(&y4, &reference, bound4, &format!("{level} F4 {p:?}"));
            eprintln!(
                "{level} {c}x{size}: F(2x2) error {:.2e} (bound {bound:.2e}), F(4x4) {:.2e} \
                 (bound {bound4:.2e}), direct {:.2e}",
                max_err(&y),
                max_err(&y4),
                max_err(&direct)
            );
        }
    }
}

/// The eval fold's epilogue in the output transform against the plain forward with the
/// bias added and the ReLU applied afterwards: the same f32 operations in the same order,
/// so equal bit for bit (padding channels included, on random geometries).
#[test]
fn bias_and_relu_in_the_output_transform() {
    for (level, four) in Level::supported()
        .into_iter()
        .flat_map(|l| [(l, false), (l, true)])
    {
        let [forward, _, _] = if four {
            super::super::winograd4_kernels(level)
        } else {
            kernels(level)
        };
        let then = super::super::winograd_forward_then(level, four);
        let mut below = generator(77);
        for i in 0..40 {
            let p = random_geometry(&mut below);
            let mut values = |n: usize| random_values(&mut below, n);
            let x = values(p.batch * p.c_in * p.h_in * p.w_in);
            let w = values(p.c_out * p.c_in * 9);
            let bias = values(p.c_out);
            let relu = i % 2 == 0;
            let epilogue = Epilogue {
                bias: Some(&bias),
                relu,
            };
            let fused = then(&x, &w, &p, epilogue).expect("takes 3x3 stride 1 pad 1");
            let mut plain = forward(&x, &w, &p).expect("takes 3x3 stride 1 pad 1");
            let plane = p.h_in * p.w_in;
            for (j, v) in plain.iter_mut().enumerate() {
                *v += bias[(j / plane) % p.c_out];
                if relu {
                    *v = v.max(0.0);
                }
            }
            assert_eq!(fused, plain, "{level} F4 {four} relu {relu} {p:?}");
        }
    }
}

/// The weight gradient over several groups of images, with blocks of tiles that end
/// inside an image and span two, against f64 im2col; and the same bits on one thread as
/// on four (a fixed summation order).
#[test]
fn weight_grad_over_groups_and_blocks() {
    for level in Level::supported() {
        let [_, _, weight_grad] = kernels(level);
        let mut below = generator(31);
        for (batch, c_in, c_out, h, w) in
            [(19, 17, 33, 7, 9), (11, 64, 64, 8, 8), (9, 3, 16, 33, 31)]
        {
            let p = Conv2dParams {
                batch,
                c_in,
                h_in: h,
                w_in: w,
                c_out,
                kh: 3,
                kw: 3,
                stride: (1, 1),
                padding: (1, 1),
            };
            let mut values = |n: usize| random_values(&mut below, n);
            let x = values(batch * c_in * h * w);
            let g = values(batch * c_out * h * w);
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| weight_grad(&g, &x, &p).expect("takes 3x3 stride 1 pad 1"))
            };
            let dw = on(4);
            assert_eq!(dw, on(1), "{level} {p:?}: one thread vs four");
            let bound = weight_grad_bound(&p, max_abs(&g), max_abs(&x));
            let reference = generic_weight_grad(&widen(&g), &widen(&x), &p);
            within(&dw, &reference, bound, &format!("{level} dW {p:?}"));
        }
    }
}

// F(4x4, 3x3) (`transform4.rs`).
//
// Its maps are checked one at a time against the matrices themselves (below, in f64):
// an entry or sign wrong in `transform4.rs` shows there as an error of order one, where
// the whole convolution's bound is loose. The matrices are checked by the 1-D identity
// they must satisfy (`A^T [(G g) . (B^T d)]` is the correlation of `d` with `g`), and
// the whole forward and input grad against f64 im2col within F(4x4, 3x3)'s bound:
// as for F(2x2, 3x3), with 4 roundings per `V`, 1 per `U`, `c_in` in the channel sum and
// 6 in the output transform (7 with the bias), and a 1-D sum
// `sum_e |A^T[o, e]| (|G| 1)_e (|B^T| 1)_e` of at most 48 (at `o = 3`: the weights
// `1/4 1/2 1/2 7/24 7/24 1` of `G` against `10 10 10 6 6 10` of `B^T`), so
// `S <= 48^2 c_in wmax xmax` and the error is at most `(c_in + 14) u 2304 c_in wmax xmax`.
// The weight gradient's bound is `weight_grad_bound`'s with 6 roundings per `dM` (and 4
// per `V`), and the 1-D sum `sum_e |G[e, k]| (|B^T| 1)_e (|A| 1)_e` at most 160/3 (at
// `k = 2`; `|A| 1` is `1 4 4 15 15 1`), so each F(4x4, 3x3) tile adds at most
// `(160/3)^2 max|dy| max|x|` per channel pair.

const B4T: [[f64; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
const G4: [[f64; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];
const A4T: [[f64; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// `X d X^T` for an `r x c` matrix `X` and a `c x c` `d` (row-major).
fn sandwich<const R: usize, const C: usize>(x: &[[f64; C]; R], d: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; R * R];
    for i in 0..R {
        for j in 0..R {
            for k in 0..C {
                for l in 0..C {
                    out[i * R + j] += x[i][k] * d[k * C + l] * x[j][l];
                }
            }
        }
    }
    out
}

/// `X^T` of an `R x C` matrix.
fn transposed<const R: usize, const C: usize>(x: &[[f64; C]; R]) -> [[f64; R]; C] {
    std::array::from_fn(|i| std::array::from_fn(|j| x[j][i]))
}

fn weight_grad_bound4(p: &Conv2dParams, gmax: f64, xmax: f64) -> f64 {
    tiled_weight_grad_bound(p, gmax, xmax, (4, 12.0, (160.0f64 / 3.0).powi(2)))
}

fn bound4(channels: usize, wmax: f64, xmax: f64) -> f64 {
    let c = channels as f64;
    (c + 14.0) * U * 2304.0 * c * wmax * xmax
}

#[test]
fn f4_matrices_give_the_correlation() {
    let mut below = generator(41);
    for _ in 0..100 {
        let mut values = |n: usize| widen(&random_values(&mut below, n));
        let (d, g) = (values(6), values(3));
        for (o, a) in A4T.iter().enumerate() {
            let mut y = 0.0;
            for e in 0..6 {
                let u: f64 = (0..3).map(|k| G4[e][k] * g[k]).sum();
                let v: f64 = (0..6).map(|k| B4T[e][k] * d[k]).sum();
                y += a[e] * u * v;
            }
            let direct: f64 = (0..3).map(|k| g[k] * d[o + k]).sum();
            assert!((y - direct).abs() < 1e-12, "output {o}: {y} vs {direct}");
        }
    }
}

#[test]
fn f4_maps_match_their_matrices() {
    use super::super::direct::Portable;
    use super::transform4;
    let mut below = generator(43);
    for _ in 0..50 {
        let mut values = |n: usize| random_values(&mut below, n);
        // U = G g G^T.
        let g = values(9);
        let want = sandwich(&G4, &widen(&g));
        for (e, (&u, &w)) in transform4::kernel(&g).iter().zip(&want).enumerate() {
            assert!((f64::from(u) - w).abs() <= 1e-6, "U[{e}]: {u} vs {w}");
        }
        // V = B^T d B, 4 channels (one portable vector) of a 6x6 patch, channels-last
        // with 2 spare pixels per row; elements `stride` apart.
        let (channels, row, stride) = (4, 8 * 4, 5);
        let image = values(6 * row);
        let mut dst = vec![0.0f32; 35 * stride + 4];
        transform4::input::<Portable>(&image, (0, row), &mut dst, (0, stride), channels);
        for c in 0..4 {
            let d: Vec<f64> = (0..36)
                .map(|k| f64::from(image[(k / 6) * row + (k % 6) * channels + c]))
                .collect();
            let want = sandwich(&B4T, &d);
            for e in 0..36 {
                let got = f64::from(dst[e * stride + c]);
                assert!(
                    (got - want[e]).abs() <= 1e-4,
                    "V[{e}][{c}]: {got} vs {}",
                    want[e]
                );
            }
        }
        // dM = A dy A^T of a 4x4 gradient tile, and G^T dU G of a 6x6 `dU`.
        let dy = values(4 * row);
        let mut dm = vec![0.0f32; 35 * stride + 4];
        transform4::output_grad::<Portable>(&dy, (0, row), &mut dm, (0, stride), channels);
        for c in 0..4 {
            let d: Vec<f64> = (0..16)
                .map(|k| f64::from(dy[(k / 4) * row + (k % 4) * channels + c]))
                .collect();
            let want = sandwich(&transposed(&A4T), &d);
            for e in 0..36 {
                let got = f64::from(dm[e * stride + c]);
                assert!(
                    (got - want[e]).abs() <= 1e-4,
                    "dM[{e}][{c}]: {got} vs {}",
                    want[e]
                );
            }
        }
        let du = values(36);
        let want = sandwich(&transposed(&G4), &widen(&du));
        for (k, (&g, &w)) in transform4::kernel_grad(&du).iter().zip(&want).enumerate() {
            assert!((f64::from(g) - w).abs() <= 1e-6, "dg[{k}]: {g} vs {w}");
        }
        // Y = A^T M A plus a bias, then the ReLU.
        let m = values(35 * stride + 4);
        let bias = [0.5f32, -0.25, 0.0, 1.0];
        for relu in [false, true] {
            let mut out = vec![0.0f32; 3 * row + 3 * channels + 4];
            transform4::output::<Portable>(
                (&m, 0, stride),
                &mut out,
                (0, row),
                channels,
                (bias, relu),
            );
            for c in 0..4 {
                let mm: Vec<f64> = (0..36).map(|e| f64::from(m[e * stride + c])).collect();
                let want = sandwich(&A4T, &mm);
                for (k, &w) in want.iter().enumerate() {
                    let w = w + f64::from(bias[c]);
                    let w = if relu { w.max(0.0) } else { w };
                    let got = f64::from(out[(k / 4) * row + (k % 4) * channels + c]);
                    assert!((got - w).abs() <= 1e-4, "Y[{k}][{c}]: {got} vs {w}");
                }
            }
        }
    }
}

#[test]
fn f4_within_its_rounding_bound_on_random_geometries() {
    for level in Level::supported() {
        let [forward, input_grad, weight_grad] = super::super::winograd4_kernels(level);
        let mut below = generator(2025);
        for _ in 0..150 {
            let p = random_geometry(&mut below);
            let mut values = |n: usize| random_values(&mut below, n);
            let x = values(p.batch * p.c_in * p.h_in * p.w_in);
            let w = values(p.c_out * p.c_in * 9);
            let g = values(p.batch * p.c_out * p.h_in * p.w_in);
            let (xmax, wmax, gmax) = (max_abs(&x), max_abs(&w), max_abs(&g));
            let what = |pass: &str| format!("{level} F4 {pass} {p:?}");
            let y = forward(&x, &w, &p).expect("takes 3x3 stride 1 pad 1");
            let f64_y = generic_conv2d(&widen(&x), &widen(&w), &p);
            within(&y, &f64_y, bound4(p.c_in, wmax, xmax), &what("y"));
            let dx = input_grad(&g, &w, &p).expect("takes 3x3 stride 1 pad 1");
            let f64_dx = generic_input_grad(&widen(&g), &widen(&w), &p);
            within(&dx, &f64_dx, bound4(p.c_out, wmax, gmax), &what("dx"));
            let dw = weight_grad(&g, &x, &p).expect("takes 3x3 stride 1 pad 1");
            let f64_dw = generic_weight_grad(&widen(&g), &widen(&x), &p);
            within(
                &dw,
                &f64_dw,
                weight_grad_bound4(&p, gmax, xmax),
                &what("dW"),
            );
        }
    }
}

/// Each thread keeps its tasks' buffers for the next conv of the same pass and geometry
/// (`Buffers::lend`), and they must carry no values over: a conv of 16 channels at
/// 32x32 fills its image buffer's every entry, then one of 12 channels at 31x31 (the same
/// tiles, pitch and padded channels, so the same `Geometry`) relies on the entries the
/// first wrote being zero. On one thread, so that the second finds the first's buffers,
/// and run twice. On small integers: F(2x2, 3x3) must be exact (as in
/// `exact_on_small_integers`); F(4x4, 3x3)'s constants (sixths) round, so it gets 0.01,
/// far above its rounding here (about 1e-4) and far below what a leaked entry adds (a
/// product of two integers, at least 1).
#[test]
fn kept_buffers_carry_nothing_into_the_next_conv() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let geometry = |c_in, size| Conv2dParams {
        batch: 2,
        c_in,
        h_in: size,
        w_in: size,
        c_out: 16,
        kh: 3,
        kw: 3,
        stride: (1, 1),
        padding: (1, 1),
    };
    let (big, small) = (geometry(16, 32), geometry(12, 31));
    let mut below = generator(7);
    let mut ints = |n: usize| -> Vec<f32> { (0..n).map(|_| below(9) as f32 - 4.0).collect() };
    let tensors = |p: &Conv2dParams, ints: &mut dyn FnMut(usize) -> Vec<f32>| {
        let x = ints(p.batch * p.c_in * p.h_in * p.w_in);
        let w = ints(p.c_out * p.c_in * 9);
        let g = ints(p.batch * p.c_out * p.h_in * p.w_in);
        (x, w, g)
    };
    let (bx, bw, bg) = tensors(&big, &mut ints);
    let (x, w, g) = tensors(&small, &mut ints);
    let expected = [
        generic_conv2d(&widen(&x), &widen(&w), &small),
        generic_input_grad(&widen(&g), &widen(&w), &small),
        generic_weight_grad(&widen(&g), &widen(&x), &small),
    ];
    for level in Level::supported() {
        for (tiling, kernels, tol) in [
            ("F2", kernels(level), 0.0),
            ("F4", super::super::winograd4_kernels(level), 0.01),
        ] {
            pool.install(|| {
                for (pass, kernel) in kernels.iter().enumerate() {
                    let (a, b, big_a, big_b) = match pass {
                        0 => (&x, &w, &bx, &bw),
                        1 => (&g, &w, &bg, &bw),
                        _ => (&g, &x, &bg, &bx),
                    };
                    kernel(big_a, big_b, &big).expect("takes 3x3 stride 1 pad 1");
                    for round in 0..2 {
                        let got = kernel(a, b, &small).expect("takes 3x3 stride 1 pad 1");
                        assert_eq!(got.len(), expected[pass].len());
                        for (i, (&v, &e)) in got.iter().zip(&expected[pass]).enumerate() {
                            assert!(
                                (f64::from(v) - e).abs() <= tol,
                                "{level} {tiling} pass {pass} round {round} [{i}]: {v} vs {e}"
                            );
                        }
                    }
                }
            });
        }
    }
}
