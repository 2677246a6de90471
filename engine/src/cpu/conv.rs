//! conv2d kernels. A convolution of one image is a matrix product with its patch matrix,
//! and so are both of its gradients. `im2col` builds that matrix, `K = c_in*kh*kw` rows
//! by `P = h_out*w_out` columns:
//! `col[(ci, ky, kx), (oy, ox)] = x[ci, oy*sh + ky - ph, ox*sw + kx - pw]` (0 in the padding).
//!
//! - forward: `y_b = W col_b` (`[c_out, K] x [K, P]`, written straight into NCHW),
//! - input grad: `dcol = W^T dy_b`, then `col2im` adds each entry back onto the pixel it was
//!   copied from (a pixel appears in up to `kh*kw` columns),
//! - weight grad: `dW = sum_b dy_b col_b^T`.
//!
//! The batch is what runs in parallel: one image per rayon task (with buffers reused
//! across a task's images, and for the direct and Winograd kernels kept per thread from
//! one call to the next: `kept`), and for the weight gradient a fixed group of images per
//! task whose partial sums are then added in order. Each task's products run on its own
//! thread.
//!
//! Three implementations: [`direct`], register-tiled f32 products that read a compact copy
//! of the image in place, written once over the vector of each SIMD level (AVX-512,
//! AVX2+FMA or portable; which levels the op uses: [`uses_direct`]); [`winograd`],
//! F(2x2, 3x3) for the forward and both gradients of stride-1 pad-1 3x3 convs, over the
//! same vectors (where the op uses it: [`uses_winograd`], [`uses_winograd_weight_grad`]);
//! and the generic path in this file, im2col and matrixmultiply's sgemm/dgemm, for f64,
//! the other levels and the geometries the others decline.
pub mod direct;
mod dispatch;
mod kept;
pub mod winograd;

use crate::backend::Conv2dParams;
use crate::Float;
use dispatch::{as_f32, direct_forward_then, from_f32, try_fast, winograd_forward_then};
pub use dispatch::{
    direct_kernels, im2col_kernels, rules_level, uses_direct, uses_winograd, uses_winograd4,
    uses_winograd4_weight_grad, uses_winograd_weight_grad, winograd4_kernels, winograd_kernels,
    F32Kernel,
};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Images per partial sum in the weight gradient. Fixed (not derived from the thread
/// count) so that the summation order, and therefore every bit of the result, is the same
/// however many threads run.
const WEIGHT_GRAD_GROUP: usize = 8;

/// The forward with batch norm folded in, for evaluation: `y = conv2d(x, w) + bias[co]`,
/// then `max(y, 0)` when `relu`. The direct kernels and Winograd add the bias and clamp
/// as they store each vector ([`direct::Epilogue`]); the generic path does both in one
/// pass after its product.
pub fn conv2d_bias_act<T: Float>(
    x: &[T],
    w: &[T],
    bias: &[T],
    relu: bool,
    p: &Conv2dParams,
) -> Vec<T> {
    let pp = p.h_out() * p.w_out();
    if p.batch * p.c_out * pp == 0 {
        return Vec::new();
    }
    let level = super::simd::level();
    if let (Some(x), Some(w), Some(bias)) = (as_f32(x), as_f32(w), as_f32(bias)) {
        // Winograd where it takes the forward (it beat the direct forward there, see
        // `uses_winograd`), else the direct kernel, each adding the bias as it stores.
        let forward = if uses_winograd(level, p) {
            Some(winograd_forward_then(level, uses_winograd4(level, p)))
        } else {
            uses_direct(level).then(|| direct_forward_then(level))
        };
        let epilogue = direct::Epilogue {
            bias: Some(bias),
            relu,
        };
        if let Some(y) = forward
            .and_then(|f| f(x, w, p, epilogue))
            .and_then(from_f32)
        {
            return y;
        }
    }
    let mut y = try_fast(x, w, p, 0).unwrap_or_else(|| generic_conv2d(x, w, p));
    y.par_chunks_mut(pp)
        .enumerate()
        .for_each(|(plane, values)| {
            let b = bias[plane % p.c_out];
            for v in values {
                *v += b;
                if relu && *v < T::ZERO {
                    *v = T::ZERO;
                }
            }
        });
    y
}

/// Forward: `y[b] = W im2col(x[b])`, NCHW in and out (`p` gives the shapes).
pub fn conv2d<T: Float>(x: &[T], w: &[T], p: &Conv2dParams) -> Vec<T> {
    if p.batch * p.c_out * p.h_out() * p.w_out() == 0 {
        return Vec::new();
    }
    if let Some(y) = try_fast(x, w, p, 0) {
        return y;
    }
    generic_conv2d(x, w, p)
}

/// Input gradient: `dx[b] = col2im(W^T dy[b])`.
pub fn conv2d_input_grad<T: Float>(g: &[T], w: &[T], p: &Conv2dParams) -> Vec<T> {
    if p.batch * p.c_in * p.h_in * p.w_in == 0 {
        return Vec::new();
    }
    if let Some(dx) = try_fast(g, w, p, 1) {
        return dx;
    }
    generic_input_grad(g, w, p)
}

/// Weight gradient: `dW = sum_b dy[b] im2col(x[b])^T`, summed per fixed group of images,
/// then the group sums added in order.
pub fn conv2d_weight_grad<T: Float>(g: &[T], x: &[T], p: &Conv2dParams) -> Vec<T> {
    if p.batch * p.h_out() * p.w_out() == 0 {
        return vec![T::ZERO; p.c_out * p.c_in * p.kh * p.kw];
    }
    if let Some(dw) = try_fast(g, x, p, 2) {
        return dw;
    }
    generic_weight_grad(g, x, p)
}

/// `images` outputs of `len` values, image `b` written by `run(state, b, image)` in a
/// rayon task (`state` from `init`, reused across a task's images). The output is not
/// zeroed: a zeroed allocation of the whole batch is one serial memset (0.35 ms for the
/// 8 MB input gradient of 128 16x32x32 images, beside about 1.5 ms of arithmetic on two
/// threads), and a kernel that stores every value needs no zeroing at all. One that adds
/// into its output starts with [`zeroed`] (in parallel, and in cache for it).
///
/// # Safety
/// `run` must write every value of the image it is given.
unsafe fn per_image<T: Float, S>(
    images: usize,
    len: usize,
    init: impl Fn() -> S + Sync + Send,
    run: impl Fn(&mut S, usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let mut out = Vec::with_capacity(images * len);
    out.spare_capacity_mut()[..images * len]
        .par_chunks_mut(len)
        .enumerate()
        .for_each_init(init, |state, (b, image)| run(state, b, image));
    // SAFETY: the chunks cover all `images * len` values, and `run` wrote each.
    unsafe { out.set_len(images * len) };
    out
}

/// `image` set to zero, as initialised values.
fn zeroed<T: Float>(image: &mut [MaybeUninit<T>]) -> &mut [T] {
    for v in image.iter_mut() {
        v.write(T::ZERO);
    }
    // SAFETY: every value of `image` was just written.
    unsafe { &mut *(image as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// Adds equal-length partial sums in their given order (a fixed order keeps the result
/// independent of how rayon scheduled them).
fn sum_in_order<T: Float>(parts: Vec<Vec<T>>, len: usize) -> Vec<T> {
    let mut total = vec![T::ZERO; len];
    for part in &parts {
        for (t, &v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    total
}

/// `K` and `P`: the im2col matrix of one image is `K x P`.
fn col_dims(p: &Conv2dParams) -> (usize, usize) {
    (p.c_in * p.kh * p.kw, p.h_out() * p.w_out())
}

/// A 1x1 kernel with stride 1 and no padding reads each pixel once, in order: the image
/// already *is* its im2col matrix, so the copy is skipped.
fn is_pointwise(p: &Conv2dParams) -> bool {
    p.kh == 1 && p.kw == 1 && p.stride == (1, 1) && p.padding == (0, 0)
}

/// Output positions `[lo, hi)` along one axis whose input `o*stride + tap - pad` falls
/// inside `0..n_in`; the others read padding.
fn valid_range(tap: usize, pad: usize, stride: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(tap).div_ceil(stride);
    let hi = (n_in + pad).saturating_sub(tap).div_ceil(stride).min(n_out);
    (lo.min(hi), hi)
}

/// Calls `run(col_offset, x_offset, len)` for every run of consecutive output columns
/// `ox` of one col row that reads inside the image: `col[col_offset + i]` pairs with
/// `x[x_offset + i*sw]`. Padding positions are never visited; they are the same for every
/// image, so im2col's buffer is zeroed once and col2im simply drops them.
#[inline(always)]
fn for_each_run(p: &Conv2dParams, mut run: impl FnMut(usize, usize, usize)) {
    let (h, w, ho, wo) = (p.h_in, p.w_in, p.h_out(), p.w_out());
    let ((sh, sw), (ph, pw)) = (p.stride, p.padding);
    let mut row = 0;
    for ci in 0..p.c_in {
        for ky in 0..p.kh {
            let (y_lo, y_hi) = valid_range(ky, ph, sh, h, ho);
            for kx in 0..p.kw {
                let (x_lo, x_hi) = valid_range(kx, pw, sw, w, wo);
                if x_lo < x_hi {
                    for oy in y_lo..y_hi {
                        let iy = oy * sh + ky - ph;
                        let ix = x_lo * sw + kx - pw;
                        run(
                            (row * ho + oy) * wo + x_lo,
                            (ci * h + iy) * w + ix,
                            x_hi - x_lo,
                        );
                    }
                }
                row += 1;
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (a row of 8 to 32 values)
/// without a call to memcpy, which costs more than such a copy: 8 values at a time, the
/// last 8 overlapping the previous ones.
#[inline(always)]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    if n < 8 {
        dst.copy_from_slice(src);
        return;
    }
    for at in (0..n - 8).step_by(8).chain([n - 8]) {
        let chunk: [T; 8] = src[at..at + 8].try_into().expect("8 values");
        dst[at..at + 8].copy_from_slice(&chunk);
    }
}

/// Copies one image `x: [c_in, h, w]` into `col: [K, P]`; `col`'s padding entries must
/// already be zero.
#[inline(always)]
fn im2col<T: Float>(x: &[T], p: &Conv2dParams, col: &mut [T]) {
    let sw = p.stride.1;
    for_each_run(p, |c, xo, len| {
        let dst = &mut col[c..c + len];
        if sw == 1 {
            copy_run(dst, &x[xo..xo + len]);
        } else {
            for (d, s) in dst.iter_mut().zip(x[xo..].iter().step_by(sw)) {
                *d = *s;
            }
        }
    });
}

/// Adds `col: [K, P]` back onto the pixels its entries were copied from (`dx += ...`).
#[inline(always)]
fn col2im<T: Float>(col: &[T], p: &Conv2dParams, dx: &mut [T]) {
    let sw = p.stride.1;
    for_each_run(p, |c, xo, len| {
        let src = &col[c..c + len];
        if sw == 1 {
            for (d, &s) in dx[xo..xo + len].iter_mut().zip(src) {
                *d += s;
            }
        } else {
            for (d, &s) in dx[xo..].iter_mut().step_by(sw).zip(src) {
                *d += s;
            }
        }
    });
}

/// A row-major `rows x cols` operand of a GEMM, possibly read transposed.
#[derive(Clone, Copy)]
struct Mat<T> {
    ptr: *const T,
    row_stride: isize,
    col_stride: isize,
}

impl<T> Mat<T> {
    fn of(m: &[T], cols: usize) -> Self {
        Mat {
            ptr: m.as_ptr(),
            row_stride: cols as isize,
            col_stride: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns (swapped strides, no copy).
    fn t(m: &[T], cols: usize) -> Self {
        Mat {
            ptr: m.as_ptr(),
            row_stride: 1,
            col_stride: cols as isize,
        }
    }
}

/// `c = a b + beta c` for `a: m x k`, `b: k x n`, row-major `c: m x n`.
fn gemm<T: Float>(m: usize, k: usize, n: usize, a: Mat<T>, b: Mat<T>, beta: T, c: &mut [T]) {
    debug_assert_eq!(c.len(), m * n);
    // SAFETY: every caller builds `a` and `b` from slices holding at least `m*k` and `k*n`
    // elements laid out as the strides say, and `c` is a distinct `m*n` slice.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            a.ptr,
            a.row_stride,
            a.col_stride,
            b.ptr,
            b.row_stride,
            b.col_stride,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// The generic paths: im2col (or the image itself for a 1x1 kernel) and a GEMM.
fn generic_conv2d<T: Float>(x: &[T], w: &[T], p: &Conv2dParams) -> Vec<T> {
    let (k, pp) = col_dims(p);
    let image = p.c_in * p.h_in * p.w_in;
    let pointwise = is_pointwise(p);
    let forward = |col: &mut Vec<T>, b, yb: &mut [MaybeUninit<T>]| {
        let yb = zeroed(yb);
        let xb = &x[b * image..(b + 1) * image];
        let col: &[T] = if pointwise {
            xb
        } else {
            im2col(xb, p, col);
            col
        };
        gemm(p.c_out, k, pp, Mat::of(w, k), Mat::of(col, pp), T::ZERO, yb);
    };
    let col_len = if pointwise { 0 } else { k * pp };
    // SAFETY: `forward` zeroes its image first.
    unsafe { per_image(p.batch, p.c_out * pp, || vec![T::ZERO; col_len], forward) }
}

fn generic_input_grad<T: Float>(g: &[T], w: &[T], p: &Conv2dParams) -> Vec<T> {
    let (k, pp) = col_dims(p);
    let image = p.c_in * p.h_in * p.w_in;
    let pointwise = is_pointwise(p);
    let input_grad = |dcol: &mut Vec<T>, b, dxb: &mut [MaybeUninit<T>]| {
        let dxb = zeroed(dxb);
        let gb = Mat::of(&g[b * p.c_out * pp..(b + 1) * p.c_out * pp], pp);
        if pointwise {
            gemm(k, p.c_out, pp, Mat::t(w, k), gb, T::ZERO, dxb);
        } else {
            gemm(k, p.c_out, pp, Mat::t(w, k), gb, T::ZERO, dcol);
            super::simd::with_simd(
                #[inline(always)]
                || col2im(dcol, p, dxb),
            );
        }
    };
    let col_len = if pointwise { 0 } else { k * pp };
    // SAFETY: `input_grad` zeroes its image first.
    unsafe { per_image(p.batch, image, || vec![T::ZERO; col_len], input_grad) }
}

fn generic_weight_grad<T: Float>(g: &[T], x: &[T], p: &Conv2dParams) -> Vec<T> {
    let (k, pp) = col_dims(p);
    let image = p.c_in * p.h_in * p.w_in;
    let out_image = p.c_out * pp;
    let pointwise = is_pointwise(p);
    let groups: Vec<Vec<T>> = (0..p.batch.div_ceil(WEIGHT_GRAD_GROUP))
        .into_par_iter()
        .map(|group| {
            let mut dw = vec![T::ZERO; p.c_out * k];
            let mut col = vec![T::ZERO; if pointwise { 0 } else { k * pp }];
            let first = group * WEIGHT_GRAD_GROUP;
            for b in first..(first + WEIGHT_GRAD_GROUP).min(p.batch) {
                let xb = &x[b * image..(b + 1) * image];
                let col: &[T] = if pointwise {
                    xb
                } else {
                    im2col(xb, p, &mut col);
                    &col
                };
                let gb = &g[b * out_image..(b + 1) * out_image];
                let beta = if b == first { T::ZERO } else { T::ONE };
                gemm(
                    p.c_out,
                    pp,
                    k,
                    Mat::of(gb, pp),
                    Mat::t(col, pp),
                    beta,
                    &mut dw,
                );
            }
            dw
        })
        .collect();
    sum_in_order(groups, p.c_out * k)
}

#[cfg(test)]
mod tests;
