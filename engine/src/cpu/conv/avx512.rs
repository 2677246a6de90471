//! f32 convolution for CPUs with AVX-512: every pass is a register-tiled outer product
//! that reads its operands in place, so nothing is packed.
//!
//! Why not matrixmultiply here: it copies both operands into packed panels first. A
//! ResNet conv multiplies each entry of the patch matrix by only 16 to 64 weights, so for
//! it that copy (on top of im2col's) costs about as much as the arithmetic.
//!
//! A tile of a product is `R x V` registers of 16 lanes; each step of the reduction
//! broadcasts `R` scalars of one operand, loads `V` vectors of the other and issues `R*V`
//! fused multiply-adds ([`fma_step`]). The passes differ in where the two come from:
//!
//! - forward, `y = W col`: weights broadcast from `[k][8]` panels; the 16 consecutive
//!   output positions of a patch row are loaded from a [`Source`], a copy of the image
//!   laid out so that they are 16 consecutive floats (far smaller than im2col's matrix).
//! - input grad, stride 1: a forward convolution of `dy` with the kernel flipped and its
//!   channel axes swapped, padded by `k - 1 - pad`. Other strides: `dcol = W^T dy`, then
//!   col2im.
//! - weight grad: channels-last. `dW[co, ky, kx, ci..ci+16] += dy[co, q] x[q + tap, ci..]`
//!   broadcasts `dy` (transposed once, so one position's channels are adjacent) and loads
//!   16 input channels of the padded image, stored `[h][w][c]`.
//!
//! The arithmetic is written with intrinsics rather than lane arrays: with a 256-FMA loop
//! body LLVM sometimes vectorised across the reduction (gathers and scatters, 20x slower)
//! instead of keeping the tile in registers.
use super::{col2im, copy_run, valid_range, WEIGHT_GRAD_GROUP};
use crate::backend::Conv2dParams;
use rayon::prelude::*;
use std::arch::x86_64::*;

/// f32 values per 512-bit register.
const LANES: usize = 16;
/// Tile of the forward and input-grad products: 8 rows x 2 vectors (16 accumulators).
const MR: usize = 8;
const NV: usize = 2;
/// Tile of the weight gradient: 8 output channels x 3 vectors of input channels.
const WR: usize = 8;
const WV: usize = 3;

type Tile<const R: usize, const V: usize> = [[__m512; V]; R];

/// Whether this CPU can run these kernels (checked once, then cached by std).
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// Whole 16-lane vectors along the output positions (`h_out*w_out` a multiple of 16).
fn whole_vectors(p: &Conv2dParams) -> bool {
    (p.h_out() * p.w_out()).is_multiple_of(LANES)
}

#[target_feature(enable = "avx512f")]
fn load(s: &[f32], at: usize) -> __m512 {
    let lanes = &s[at..at + LANES];
    // SAFETY: `lanes` holds 16 floats.
    unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
}

#[target_feature(enable = "avx512f")]
fn store(d: &mut [f32], at: usize, v: __m512) {
    let lanes = &mut d[at..at + LANES];
    // SAFETY: `lanes` holds 16 floats.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) }
}

/// `dst[i] = src[i * stride]` for every `i < dst.len()`, 16 at a time with gathers.
#[target_feature(enable = "avx512f")]
fn strided_copy(dst: &mut [f32], src: &[f32], stride: usize) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    if stride == 1 {
        return copy_run(dst, &src[..n]);
    }
    assert!((n - 1) * stride < src.len() && (LANES * stride) < i32::MAX as usize);
    let step = _mm512_set1_epi32(stride as i32);
    let index = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        step,
    );
    for start in (0..n).step_by(LANES) {
        let mask = u16::MAX >> (LANES - (n - start).min(LANES));
        // SAFETY: the lanes enabled by `mask` read `src[(start + l) * stride]` with
        // `start + l < n`, in bounds by the assert, and write `dst[start + l]`.
        unsafe {
            let base = src.as_ptr().add(start * stride);
            let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, index, base);
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(start), mask, v);
        }
    }
}

/// One reduction step of a tile: `sum[i][v] += a[i] * b[v]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn fma_step<const R: usize, const V: usize>(sum: &mut Tile<R, V>, a: &[f32; R], b: &[__m512; V]) {
    for (row, &a) in sum.iter_mut().zip(a) {
        let ai = _mm512_set1_ps(a);
        for (acc, &bv) in row.iter_mut().zip(b) {
            *acc = _mm512_fmadd_ps(ai, bv, *acc);
        }
    }
}

/// `A B` for an `MR`-row panel `A` (`panel[r*MR + i]` is `A(i, r)`: one step's scalars
/// are adjacent) and a `B` whose row `r` starts at `b[b_row(r)]`; the tile's vector `v`
/// is at column offset `b_base[v]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn panel_tile(
    panel: &[f32],
    b: &[f32],
    b_row: impl Fn(usize) -> usize,
    b_base: [usize; NV],
) -> Tile<MR, NV> {
    let mut sum = [[_mm512_setzero_ps(); NV]; MR];
    for (r, a) in panel.chunks_exact(MR).enumerate() {
        let row = b_row(r);
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, base) in bv.iter_mut().zip(b_base) {
            *v = load(b, row + base);
        }
        fma_step(&mut sum, a.try_into().expect("MR scalars"), &bv);
    }
    sum
}

/// A copy of one image laid out so that entry `(k, p)` of its `K x P` patch matrix is
/// `buf[row[k] + col(p)]`, 16 consecutive `p` (from a multiple of 16) being 16
/// consecutive floats. Output `(oy, ox)` reads padded pixel `(sh*oy + ky, sw*ox + kx)`.
struct Source {
    row: Vec<usize>,
    /// `col(p) = (p / w_out) * pitch + p % w_out`.
    w_out: usize,
    pitch: usize,
    /// Floats per image.
    len: usize,
    /// Rows per plane (a plane is `rows x pitch`).
    rows: usize,
    /// Planes are `[c_in][sh][sw]` stride phases of the padded image when the output width
    /// is a multiple of 16: phase `(py, px)` holds padded pixels `(sh*i + py, sw*j + px)`,
    /// so kernel tap `(ky, kx)` reads phase `(ky % sh, kx % sw)` from `(oy + ky/sh, ox + kx/sw)`,
    /// consecutive in `ox`. Otherwise they are `[c_in][kw][sh]` shifted rows: plane `(kx, py)`
    /// row `i` holds padded pixels `(sh*i + py, sw*ox + kx)` for `ox < w_out`, and
    /// `pitch = w_out` makes consecutive output rows adjacent (`col(p) = p`).
    phases: bool,
}

impl Source {
    fn new(p: &Conv2dParams) -> Self {
        let ((sh, sw), (ph, pw)) = (p.stride, p.padding);
        let rows = (p.h_in + 2 * ph).div_ceil(sh);
        let phases = p.w_out().is_multiple_of(LANES);
        let pitch = if phases {
            (p.w_in + 2 * pw).div_ceil(sw)
        } else {
            p.w_out()
        };
        let mut row = Vec::with_capacity(p.c_in * p.kh * p.kw);
        for ci in 0..p.c_in {
            for ky in 0..p.kh {
                row.extend((0..p.kw).map(|kx| {
                    let (plane, x) = if phases {
                        ((ci * sh + ky % sh) * sw + kx % sw, kx / sw)
                    } else {
                        ((ci * p.kw + kx) * sh + ky % sh, 0)
                    };
                    (plane * rows + ky / sh) * pitch + x
                }));
            }
        }
        let planes = if phases { sh * sw } else { p.kw * sh };
        Source {
            row,
            w_out: p.w_out(),
            pitch,
            len: p.c_in * planes * rows * pitch,
            rows,
            phases,
        }
    }

    fn col(&self, p: usize) -> usize {
        (p / self.w_out) * self.pitch + p % self.w_out
    }

    /// Writes image `x`'s copy into `dst`, whose padding entries must already be zero
    /// (they are never written, so a buffer reused across images stays valid).
    #[target_feature(enable = "avx512f")]
    fn fill(&self, x: &[f32], p: &Conv2dParams, dst: &mut [f32]) {
        let ((sh, sw), (ph, pw)) = (p.stride, p.padding);
        let plane_len = self.rows * self.pitch;
        for (ci, channel) in x.chunks_exact(p.h_in * p.w_in).enumerate() {
            for (iy, src) in channel.chunks_exact(p.w_in).enumerate() {
                let (py, qy) = ((iy + ph) % sh, (iy + ph) / sh);
                if self.phases {
                    for px in 0..sw {
                        // The pixels ix of this row in phase px: ix + pw = px (mod sw).
                        let ix0 = (px + sw - pw % sw) % sw;
                        let n = p.w_in.saturating_sub(ix0).div_ceil(sw);
                        let at = ((ci * sh + py) * sw + px) * plane_len
                            + qy * self.pitch
                            + (ix0 + pw) / sw;
                        strided_copy(&mut dst[at..at + n], &src[ix0.min(p.w_in)..], sw);
                    }
                } else {
                    for kx in 0..p.kw {
                        let (lo, hi) = valid_range(kx, pw, sw, p.w_in, p.w_out());
                        let at = ((ci * p.kw + kx) * sh + py) * plane_len + qy * self.pitch;
                        let ix = (lo * sw + kx).saturating_sub(pw);
                        strided_copy(&mut dst[at + lo..at + hi], &src[ix.min(p.w_in)..], sw);
                    }
                }
            }
        }
    }
}

/// `m x depth` matrix `a(i, r)` as `[panel][r][MR]`, rows past `m` zero.
fn panels(m: usize, depth: usize, a: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut out = vec![0.0; m.div_ceil(MR) * depth * MR];
    for (n, panel) in out.chunks_exact_mut(depth * MR).enumerate() {
        for (r, dst) in panel.chunks_exact_mut(MR).enumerate() {
            for (i, d) in dst.iter_mut().enumerate().take(m.saturating_sub(n * MR)) {
                *d = a(n * MR + i, r);
            }
        }
    }
    out
}

/// `c = A B` for `A` given as panels (`m` rows, `depth` steps) and a `B` with `n` columns
/// (a multiple of 16) whose row `r` starts at `b_row(r)` and column `j` at `b_col(j)`;
/// `c` has row stride `ldc`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
fn panel_product(
    a_panels: &[f32],
    m: usize,
    depth: usize,
    b: &[f32],
    b_row: impl Fn(usize) -> usize + Copy,
    b_col: impl Fn(usize) -> usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for j in (0..n).step_by(NV * LANES) {
        // A last tile with one valid vector repeats it rather than read past the end.
        let b_base = [b_col(j), b_col((j + LANES).min(n - LANES))];
        for (ib, panel) in a_panels.chunks_exact(depth * MR).enumerate() {
            let acc = panel_tile(panel, b, b_row, b_base);
            for (i, vectors) in acc.iter().enumerate() {
                for (v, &vector) in vectors.iter().enumerate() {
                    let (row, col) = (ib * MR + i, j + v * LANES);
                    if row < m && col < n {
                        store(c, row * ldc + col, vector);
                    }
                }
            }
        }
    }
}

#[target_feature(enable = "avx512f")]
fn forward_image(
    a_panels: &[f32],
    src: &Source,
    p: &Conv2dParams,
    x: &[f32],
    buf: &mut [f32],
    y: &mut [f32],
) {
    let (k, pp) = super::col_dims(p);
    src.fill(x, p, buf);
    let b_row = |r: usize| src.row[r];
    panel_product(a_panels, p.c_out, k, buf, b_row, |j| src.col(j), pp, y, pp);
}

/// Forward: `y[b] = W patches(x[b])`, one image per rayon task. `None` if the output
/// positions do not fill whole vectors.
pub fn conv2d(x: &[f32], w: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    if !whole_vectors(p) {
        return None;
    }
    let (k, pp) = super::col_dims(p);
    let image = p.c_in * p.h_in * p.w_in;
    let a_panels = panels(p.c_out, k, |co, r| w[co * k + r]);
    let src = Source::new(p);
    let mut y = vec![0.0; p.batch * p.c_out * pp];
    y.par_chunks_mut(p.c_out * pp).enumerate().for_each_init(
        || vec![0.0; src.len],
        |buf, (b, yb)| {
            let xb = &x[b * image..(b + 1) * image];
            // SAFETY: `available()` was checked by the caller.
            unsafe { forward_image(&a_panels, &src, p, xb, buf, yb) }
        },
    );
    Some(y)
}

#[target_feature(enable = "avx512f")]
fn dcol_image(a_panels: &[f32], p: &Conv2dParams, g: &[f32], dcol: &mut [f32], dx: &mut [f32]) {
    let (k, pp) = super::col_dims(p);
    panel_product(a_panels, k, p.c_out, g, |r| r * pp, |j| j, pp, dcol, pp);
    col2im(dcol, p, dx);
}

/// Input gradient. Stride 1 (with `pad <= k - 1`): `dx` is the forward convolution of
/// `dy` with `W'[ci, co, ky, kx] = W[co, ci, kh-1-ky, kw-1-kx]` and padding `k - 1 - pad`.
/// Otherwise `dx[b] = col2im(W^T dy[b])`.
pub fn conv2d_input_grad(g: &[f32], w: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    if p.stride == (1, 1) && p.padding.0 < p.kh && p.padding.1 < p.kw {
        let flipped = Conv2dParams {
            c_in: p.c_out,
            h_in: p.h_out(),
            w_in: p.w_out(),
            c_out: p.c_in,
            padding: (p.kh - 1 - p.padding.0, p.kw - 1 - p.padding.1),
            ..*p
        };
        if whole_vectors(&flipped) {
            let taps = p.kh * p.kw;
            // Index `(ci, co, t)` of W' reads `(co, ci, taps - 1 - t)` of W: both kernel
            // axes reversed at once.
            let w_flipped: Vec<f32> = (0..p.c_in * p.c_out * taps)
                .map(|i| {
                    let (ci, co, t) = (i / (p.c_out * taps), (i / taps) % p.c_out, i % taps);
                    w[(co * p.c_in + ci) * taps + taps - 1 - t]
                })
                .collect();
            return conv2d(g, &w_flipped, &flipped);
        }
    }
    if !whole_vectors(p) {
        return None;
    }
    let (k, pp) = super::col_dims(p);
    let image = p.c_in * p.h_in * p.w_in;
    let a_panels = panels(k, p.c_out, |r, co| w[co * k + r]);
    let mut dx = vec![0.0; p.batch * image];
    dx.par_chunks_mut(image).enumerate().for_each_init(
        || vec![0.0; k * pp],
        |dcol, (b, dxb)| {
            let gb = &g[b * p.c_out * pp..(b + 1) * p.c_out * pp];
            // SAFETY: `available()` was checked by the caller.
            unsafe { dcol_image(&a_panels, p, gb, dcol, dxb) }
        },
    );
    Some(dx)
}

/// `dst[j*ld + i] = src[i*row_stride + j]` for `i < rows`, `j < len`: the first `len`
/// values of `rows` rows, transposed, 16 values of a column per gather.
#[target_feature(enable = "avx512f")]
fn transpose_rows(
    src: &[f32],
    rows: usize,
    len: usize,
    row_stride: usize,
    dst: &mut [f32],
    ld: usize,
) {
    assert!(src.len() >= (rows - 1) * row_stride + len && dst.len() >= (len - 1) * ld + rows);
    assert!(LANES * row_stride < i32::MAX as usize);
    let index = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(row_stride as i32),
    );
    for i0 in (0..rows).step_by(LANES) {
        let mask = u16::MAX >> (LANES - (rows - i0).min(LANES));
        for j in 0..len {
            // SAFETY: enabled lanes read `src[(i0 + l)*row_stride + j]` and write
            // `dst[j*ld + i0 + l]` with `i0 + l < rows`, in bounds by the asserts.
            unsafe {
                let v = _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    mask,
                    index,
                    src.as_ptr().add(i0 * row_stride + j),
                );
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(j * ld + i0), mask, v);
            }
        }
    }
}

/// Buffers of one weight-gradient task, reused across its groups: the group's images
/// padded and channels-last (`[b][h + 2ph][w + 2pw][c_in]`, the border zero) and `dy^T`
/// (`[b][position][ld]`, channels past `c_out` zero).
struct WeightGradBuffers {
    images: Vec<f32>,
    dy_t: Vec<f32>,
}

/// One group's `dW`: every `WR x (WV*16)` tile of `dW` (output channels by input-channel
/// vectors of one kernel tap) reduces over all of the group's output positions.
#[target_feature(enable = "avx512f")]
fn weight_grad_group(
    p: &Conv2dParams,
    x: &[f32],
    g: &[f32],
    bufs: &mut WeightGradBuffers,
    dw: &mut [f32],
) {
    let (c, taps, (ho, wo)) = (p.c_in, p.kh * p.kw, (p.h_out(), p.w_out()));
    let (hp, wp, pp) = (p.h_in + 2 * p.padding.0, p.w_in + 2 * p.padding.1, ho * wo);
    let (image, padded, out_image) = (c * p.h_in * p.w_in, hp * wp * c, p.c_out * pp);
    let ld = p.c_out.next_multiple_of(WR);
    let images = g.len() / out_image;
    for b in 0..images {
        // Rows of the NCHW image are the channels: transposing them gives [h][w][c].
        for iy in 0..p.h_in {
            let at = b * padded + ((iy + p.padding.0) * wp + p.padding.1) * c;
            let xb = &x[b * image + iy * p.w_in..(b + 1) * image];
            transpose_rows(xb, c, p.w_in, p.h_in * p.w_in, &mut bufs.images[at..], c);
        }
        let dy_t = &mut bufs.dy_t[b * pp * ld..(b + 1) * pp * ld];
        transpose_rows(
            &g[b * out_image..(b + 1) * out_image],
            p.c_out,
            pp,
            pp,
            dy_t,
            ld,
        );
    }
    // Vector v is input channels 16*(v % blocks).. of tap v / blocks.
    let blocks = c / LANES;
    let vectors = taps * blocks;
    let offset = |v: usize| {
        let (tap, block) = (v / blocks, v % blocks);
        ((tap / p.kw) * wp + tap % p.kw) * c + block * LANES
    };
    let step = p.stride.1 * c;
    let mut lanes = [0.0; LANES];
    for cb in (0..p.c_out).step_by(WR) {
        for vb in (0..vectors).step_by(WV) {
            // Vectors past the last repeat it; their results are dropped.
            let off: [usize; WV] = std::array::from_fn(|v| offset((vb + v).min(vectors - 1)));
            let mut sum = [[_mm512_setzero_ps(); WV]; WR];
            for b in 0..images {
                for oy in 0..ho {
                    let xs = &bufs.images[b * padded + p.stride.0 * oy * wp * c..(b + 1) * padded];
                    let gs = &bufs.dy_t[(b * pp + oy * wo) * ld..][..wo * ld];
                    for (t, gq) in gs.chunks_exact(ld).enumerate() {
                        let mut bv = [_mm512_setzero_ps(); WV];
                        for (v, o) in bv.iter_mut().zip(off) {
                            *v = load(xs, t * step + o);
                        }
                        fma_step(
                            &mut sum,
                            gq[cb..cb + WR].try_into().expect("WR scalars"),
                            &bv,
                        );
                    }
                }
            }
            for (i, row) in sum.iter().enumerate().filter(|(i, _)| cb + i < p.c_out) {
                for (v, &vector) in row.iter().enumerate().filter(|(v, _)| vb + v < vectors) {
                    store(&mut lanes, 0, vector);
                    let (tap, block) = ((vb + v) / blocks, (vb + v) % blocks);
                    for (l, &val) in lanes.iter().enumerate() {
                        dw[((cb + i) * c + block * LANES + l) * taps + tap] = val;
                    }
                }
            }
        }
    }
}

/// Weight gradient: `dW = sum_b dy[b] patches(x[b])^T`, one fixed group of images per
/// rayon task, the group sums then added in order (so the result does not depend on the
/// number of threads). `None` unless `c_in` is a multiple of 16.
pub fn conv2d_weight_grad(g: &[f32], x: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    if !p.c_in.is_multiple_of(LANES) {
        return None;
    }
    let (k, pp) = super::col_dims(p);
    let (image, out_image) = (p.c_in * p.h_in * p.w_in, p.c_out * pp);
    let padded = (p.h_in + 2 * p.padding.0) * (p.w_in + 2 * p.padding.1) * p.c_in;
    let ld = p.c_out.next_multiple_of(WR);
    let groups: Vec<Vec<f32>> = (0..p.batch.div_ceil(WEIGHT_GRAD_GROUP))
        .into_par_iter()
        .map_init(
            || WeightGradBuffers {
                images: vec![0.0; WEIGHT_GRAD_GROUP * padded],
                dy_t: vec![0.0; WEIGHT_GRAD_GROUP * pp * ld],
            },
            |bufs, group| {
                let first = group * WEIGHT_GRAD_GROUP;
                let last = (first + WEIGHT_GRAD_GROUP).min(p.batch);
                let (xg, gg) = (
                    &x[first * image..last * image],
                    &g[first * out_image..last * out_image],
                );
                let mut dw = vec![0.0; p.c_out * k];
                // SAFETY: `available()` was checked by the caller.
                unsafe { weight_grad_group(p, xg, gg, bufs, &mut dw) };
                dw
            },
        )
        .collect();
    Some(super::sum_in_order(groups, p.c_out * k))
}
