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
use super::{copy_run, valid_range, WEIGHT_GRAD_GROUP};
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

/// A mask enabling the first `count` (at most 16) lanes.
fn first_lanes(count: usize) -> __mmask16 {
    ((1u32 << count.min(LANES)) - 1) as __mmask16
}

/// The first `count` (at most 16) values at `s[at..]`, the other lanes zero.
#[target_feature(enable = "avx512f")]
fn load_first(s: &[f32], at: usize, count: usize) -> __m512 {
    let lanes = &s[at..at + count.min(LANES)];
    // SAFETY: the mask enables exactly the lanes of `lanes`.
    unsafe { _mm512_maskz_loadu_ps(first_lanes(lanes.len()), lanes.as_ptr()) }
}

/// Stores the first `count` (at most 16) lanes of `v` at `d[at..]`.
#[target_feature(enable = "avx512f")]
fn store_first(d: &mut [f32], at: usize, count: usize, v: __m512) {
    let lanes = &mut d[at..at + count.min(LANES)];
    // SAFETY: the mask enables exactly the lanes of `lanes`.
    unsafe { _mm512_mask_storeu_ps(lanes.as_mut_ptr(), first_lanes(lanes.len()), v) }
}

/// Lane indices (into two concatenated vectors) of the even values, of the odd ones,
/// and of the two vectors' first (then second) halves interleaved.
const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
const ZIP_LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
const ZIP_HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

#[target_feature(enable = "avx512f")]
fn lane_index(i: [i32; 16]) -> __m512i {
    // SAFETY: `i` is 64 readable bytes.
    unsafe { _mm512_loadu_si512(i.as_ptr().cast()) }
}

/// Splits a row into its `stride` phases: `phases[r*len + j] = row[j*stride + r]`, with
/// `len = ceil(row.len() / stride)` (returned). Stride 2 takes two permutes per 32 values.
#[target_feature(enable = "avx512f")]
fn split_phases(row: &[f32], stride: usize, phases: &mut [f32]) -> usize {
    let (n, len) = (row.len(), row.len().div_ceil(stride));
    if stride == 2 {
        let (even, odd) = phases.split_at_mut(len);
        let (pick_even, pick_odd) = (lane_index(EVEN), lane_index(ODD));
        for start in (0..n).step_by(2 * LANES) {
            let m = n - start;
            let a = load_first(row, start, m);
            let b = load_first(row, start + m.min(LANES), m.saturating_sub(LANES));
            store_first(
                even,
                start / 2,
                m.div_ceil(2),
                _mm512_permutex2var_ps(a, pick_even, b),
            );
            store_first(
                odd,
                start / 2,
                m / 2,
                _mm512_permutex2var_ps(a, pick_odd, b),
            );
        }
    } else {
        for r in 0..stride {
            for (d, &v) in phases[r * len..]
                .iter_mut()
                .zip(row.iter().skip(r).step_by(stride))
            {
                *d = v;
            }
        }
    }
    len
}

/// The inverse of [`split_phases`]: `row[j*stride + r] = phases[r*len + j]`.
#[target_feature(enable = "avx512f")]
fn merge_phases(phases: &[f32], len: usize, stride: usize, row: &mut [f32]) {
    let n = row.len();
    if stride == 2 {
        let (even, odd) = phases.split_at(len);
        let (zip_lo, zip_hi) = (lane_index(ZIP_LO), lane_index(ZIP_HI));
        for start in (0..n).step_by(2 * LANES) {
            let m = n - start;
            let e = load_first(even, start / 2, m.div_ceil(2));
            let o = load_first(odd, start / 2, m / 2);
            store_first(row, start, m, _mm512_permutex2var_ps(e, zip_lo, o));
            let rest = m.saturating_sub(LANES);
            store_first(
                row,
                start + m.min(LANES),
                rest,
                _mm512_permutex2var_ps(e, zip_hi, o),
            );
        }
    } else {
        for r in 0..stride {
            for (d, &v) in row
                .iter_mut()
                .skip(r)
                .step_by(stride)
                .zip(&phases[r * len..])
            {
                *d = v;
            }
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
/// `copy[row[k] + col(p)]`, 16 consecutive `p` (from a multiple of 16) being 16
/// consecutive floats. Output `(oy, ox)` reads padded pixel `(sh*oy + ky, sw*ox + kx)`.
///
/// Each input channel becomes planes of `rows x pitch` floats:
/// - when the output width is a multiple of 16, the `sh x sw` stride phases of the padded
///   channel: phase `(py, px)` holds padded pixels `(sh*i + py, sw*j + px)`, so tap
///   `(ky, kx)` reads phase `(ky % sh, kx % sw)` at `(oy + ky/sh, ox + kx/sw)`, consecutive
///   in `ox` (for stride 1 this is just the padded channel);
/// - otherwise `kw x sh` shifted rows: plane `(kx, py)` row `i` holds padded pixels
///   `(sh*i + py, sw*ox + kx)` for `ox < w_out`, and `pitch = w_out` makes consecutive
///   output rows adjacent too (`col(p) = p`).
struct Source {
    row: Vec<usize>,
    /// `col(p) = (p / w_out) * pitch + p % w_out`.
    w_out: usize,
    pitch: usize,
    /// Floats per image, and per input channel.
    len: usize,
    channel_len: usize,
    /// Where input row `iy` of channel 0 starts, before a run's own offset.
    row_start: Vec<usize>,
    /// The runs every input row is stored as (the same for every row).
    runs: Vec<Run>,
}

/// `len` values of an input row's stride phase `phase`, from its entry `from`, stored
/// contiguously at `at` past the row's start (see [`split_phases`]).
struct Run {
    at: usize,
    phase: usize,
    from: usize,
    len: usize,
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
        let plane_len = rows * pitch;
        let mut row = Vec::with_capacity(p.c_in * p.kh * p.kw);
        let mut runs = Vec::new();
        let channel_len;
        if phases {
            channel_len = sh * sw * plane_len;
            for ci in 0..p.c_in {
                for ky in 0..p.kh {
                    row.extend((0..p.kw).map(|kx| {
                        let plane = (ky % sh) * sw + kx % sw;
                        ci * channel_len + plane * plane_len + (ky / sh) * pitch + kx / sw
                    }));
                }
            }
            // Pixel j*sw + r of a row sits at padded column j*sw + r + pw.
            for r in 0..sw.min(p.w_in) {
                let at = ((r + pw) % sw) * plane_len + (r + pw) / sw;
                runs.push(Run {
                    at,
                    phase: r,
                    from: 0,
                    len: (p.w_in - r).div_ceil(sw),
                });
            }
        } else {
            channel_len = p.kw * sh * plane_len;
            for ci in 0..p.c_in {
                for ky in 0..p.kh {
                    row.extend((0..p.kw).map(|kx| {
                        let plane = kx * sh + ky % sh;
                        ci * channel_len + plane * plane_len + (ky / sh) * pitch
                    }));
                }
            }
            // Output column ox of plane kx reads pixel sw*ox + kx - pw.
            for kx in 0..p.kw {
                let (lo, hi) = valid_range(kx, pw, sw, p.w_in, p.w_out());
                if lo < hi {
                    let first = lo * sw + kx - pw;
                    let at = kx * sh * plane_len + lo;
                    runs.push(Run {
                        at,
                        phase: first % sw,
                        from: first / sw,
                        len: hi - lo,
                    });
                }
            }
        }
        let row_start = (0..p.h_in)
            .map(|iy| {
                let (py, qy) = ((iy + ph) % sh, (iy + ph) / sh);
                let plane = if phases { py * sw } else { py };
                plane * plane_len + qy * pitch
            })
            .collect();
        Source {
            row,
            w_out: p.w_out(),
            pitch,
            len: p.c_in * channel_len,
            channel_len,
            row_start,
            runs,
        }
    }

    fn col(&self, p: usize) -> usize {
        (p / self.w_out) * self.pitch + p % self.w_out
    }

    /// Writes image `x`'s copy into `dst`, whose padding entries must already be zero
    /// (they are never written, so a buffer reused across images stays valid).
    #[target_feature(enable = "avx512f")]
    fn fill(&self, x: &[f32], p: &Conv2dParams, dst: &mut [f32], scratch: &mut [f32]) {
        for (ci, channel) in x.chunks_exact(p.h_in * p.w_in).enumerate() {
            for (row, start) in channel.chunks_exact(p.w_in).zip(&self.row_start) {
                let (phases, len) = match p.stride.1 {
                    1 => (row, p.w_in),
                    sw => {
                        let len = split_phases(row, sw, scratch);
                        (&scratch[..], len)
                    }
                };
                let base = ci * self.channel_len + start;
                for run in &self.runs {
                    let at = base + run.at;
                    copy_run(
                        &mut dst[at..at + run.len],
                        &phases[run.phase * len + run.from..][..run.len],
                    );
                }
            }
        }
    }

    /// The reverse of [`Source::fill`] for gradients: every image pixel's entries in
    /// `src` (a gradient w.r.t. this copy) summed into `dx` (padding entries dropped).
    #[target_feature(enable = "avx512f")]
    fn unfill(&self, src: &[f32], p: &Conv2dParams, dx: &mut [f32], scratch: &mut [f32]) {
        let sw = p.stride.1;
        let len = p.w_in.div_ceil(sw);
        for (ci, channel) in dx.chunks_exact_mut(p.h_in * p.w_in).enumerate() {
            for (row, start) in channel.chunks_exact_mut(p.w_in).zip(&self.row_start) {
                let phases = &mut scratch[..sw * len];
                phases.fill(0.0);
                let base = ci * self.channel_len + start;
                for run in &self.runs {
                    let at = base + run.at;
                    let dst = &mut phases[run.phase * len + run.from..][..run.len];
                    for (d, &v) in dst.iter_mut().zip(&src[at..at + run.len]) {
                        *d += v;
                    }
                }
                merge_phases(phases, len, sw, row);
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

/// How a matrix with 16-aligned column blocks is laid out: plain rows `ld` apart, or an
/// image copy ([`Source`]) whose row `r` is patch row `row[r]` (`src.row`, or a
/// permutation of it).
#[derive(Clone, Copy)]
enum Layout<'a> {
    Rows(usize),
    Patches(&'a Source, &'a [usize]),
}

impl Layout<'_> {
    fn row(&self, r: usize) -> usize {
        match self {
            Layout::Rows(ld) => r * ld,
            Layout::Patches(_, row) => row[r],
        }
    }
    fn col(&self, j: usize) -> usize {
        match self {
            Layout::Rows(_) => j,
            Layout::Patches(src, _) => src.col(j),
        }
    }
}

/// `c = A B` (or `c += A B` with `accumulate`) for `A` given as panels (`m` rows, `depth`
/// steps) and a `B` with `n` columns, `n` a multiple of 16.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
fn panel_product(
    a_panels: &[f32],
    (m, depth, n): (usize, usize, usize),
    b: &[f32],
    b_at: Layout,
    c: &mut [f32],
    c_at: Layout,
    accumulate: bool,
) {
    for j in (0..n).step_by(NV * LANES) {
        // A last tile with one valid vector repeats it rather than read past the end.
        let b_base = [b_at.col(j), b_at.col((j + LANES).min(n - LANES))];
        // (Column offsets outside the row loop: `col` divides.)
        let c_base = [c_at.col(j), c_at.col((j + LANES).min(n - LANES))];
        for (ib, panel) in a_panels.chunks_exact(depth * MR).enumerate() {
            let acc = panel_tile(panel, b, |r| b_at.row(r), b_base);
            for (i, vectors) in acc.iter().enumerate() {
                for (v, &vector) in vectors.iter().enumerate() {
                    let (row, col) = (ib * MR + i, j + v * LANES);
                    if row < m && col < n {
                        let at = c_at.row(row) + c_base[v];
                        let sum = if accumulate {
                            _mm512_add_ps(load(c, at), vector)
                        } else {
                            vector
                        };
                        store(c, at, sum);
                    }
                }
            }
        }
    }
}

/// Buffers of one task of the forward or input grad, reused across its images.
struct ImageBuffers {
    copy: Vec<f32>,
    /// One row split into its stride phases.
    phases: Vec<f32>,
}

impl ImageBuffers {
    fn new(src: &Source, p: &Conv2dParams) -> Self {
        ImageBuffers {
            copy: vec![0.0; src.len],
            phases: vec![0.0; p.w_in + p.stride.1],
        }
    }
}

#[target_feature(enable = "avx512f")]
fn forward_image(
    a_panels: &[f32],
    src: &Source,
    p: &Conv2dParams,
    x: &[f32],
    bufs: &mut ImageBuffers,
    y: &mut [f32],
) {
    let (k, pp) = super::col_dims(p);
    src.fill(x, p, &mut bufs.copy, &mut bufs.phases);
    let dims = (p.c_out, k, pp);
    let b_at = Layout::Patches(src, &src.row);
    panel_product(a_panels, dims, &bufs.copy, b_at, y, Layout::Rows(pp), false);
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
        || ImageBuffers::new(&src, p),
        |bufs, (b, yb)| {
            let xb = &x[b * image..(b + 1) * image];
            // SAFETY: `available()` was checked by the caller.
            unsafe { forward_image(&a_panels, &src, p, xb, bufs, yb) }
        },
    );
    Some(y)
}

/// `dx[b] = unfill(W^T dy[b])`: the product lands in a gradient of the image copy
/// (entries that alias one pixel add up), then each pixel gathers its entries. Rows are
/// taken tap-major (`rows[tap*c_in + ci]`), so the 8 rows of a tile are 8 channels (disjoint
/// planes): rows of one channel overlap, and a load of what the previous row just stored,
/// shifted by a float, stalls until that store completes.
#[target_feature(enable = "avx512f")]
fn input_grad_image(
    a_panels: &[f32],
    src: &Source,
    rows: &[usize],
    p: &Conv2dParams,
    g: &[f32],
    bufs: &mut ImageBuffers,
    dx: &mut [f32],
) {
    let (k, pp) = super::col_dims(p);
    bufs.copy.fill(0.0);
    let dims = (k, p.c_out, pp);
    let c_at = Layout::Patches(src, rows);
    panel_product(
        a_panels,
        dims,
        g,
        Layout::Rows(pp),
        &mut bufs.copy,
        c_at,
        true,
    );
    src.unfill(&bufs.copy, p, dx, &mut bufs.phases);
}

/// Input gradient. Stride 1 (with `pad <= k - 1`): `dx` is the forward convolution of
/// `dy` with `W'[ci, co, ky, kx] = W[co, ci, kh-1-ky, kw-1-kx]` and padding `k - 1 - pad`.
/// Otherwise the transpose of the forward: `W^T dy[b]` added into a gradient of the
/// image copy, then summed back onto the pixels.
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
    let (image, taps) = (p.c_in * p.h_in * p.w_in, p.kh * p.kw);
    let patch_row = |r: usize| (r % p.c_in) * taps + r / p.c_in;
    let a_panels = panels(k, p.c_out, |r, co| w[co * k + patch_row(r)]);
    let src = Source::new(p);
    let rows: Vec<usize> = (0..k).map(|r| src.row[patch_row(r)]).collect();
    let mut dx = vec![0.0; p.batch * image];
    dx.par_chunks_mut(image).enumerate().for_each_init(
        || ImageBuffers::new(&src, p),
        |bufs, (b, dxb)| {
            let gb = &g[b * p.c_out * pp..(b + 1) * p.c_out * pp];
            // SAFETY: `available()` was checked by the caller.
            unsafe { input_grad_image(&a_panels, &src, &rows, p, gb, bufs, dxb) }
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
        let mask = first_lanes(rows - i0);
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

/// One `WR x WV` tile of `dW` over all output rows: for a row starting at `(x0, g0)` and
/// `t < len`, the scalars are `dy_t[g0 + t*ld + cb..][..WR]` and vector `v` is
/// `images[x0 + t*step + off[v]..][..16]`. Not inlined: compiled on its own, LLVM keeps
/// the 24 accumulators in registers (inlined into the loops around it, it spilled them).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
#[inline(never)]
fn weight_tile(
    runs: &[(usize, usize)],
    len: usize,
    images: &[f32],
    step: usize,
    off: [usize; WV],
    dy_t: &[f32],
    ld: usize,
    cb: usize,
) -> Tile<WR, WV> {
    let mut sum = [[_mm512_setzero_ps(); WV]; WR];
    for &(x0, g0) in runs {
        for t in 0..len {
            let mut bv = [_mm512_setzero_ps(); WV];
            for (v, o) in bv.iter_mut().zip(off) {
                *v = load(images, x0 + t * step + o);
            }
            let a = dy_t[g0 + t * ld + cb..][..WR]
                .try_into()
                .expect("WR scalars");
            fma_step(&mut sum, a, &bv);
        }
    }
    sum
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
    // Where each output row starts: in the images (its first tap) and in dy^T.
    let runs: Vec<(usize, usize)> = (0..images)
        .flat_map(|b| {
            (0..ho).map(move |oy| {
                (
                    b * padded + p.stride.0 * oy * wp * c,
                    (b * pp + oy * wo) * ld,
                )
            })
        })
        .collect();
    let mut lanes = [0.0; LANES];
    for cb in (0..p.c_out).step_by(WR) {
        for vb in (0..vectors).step_by(WV) {
            // Vectors past the last repeat it; their results are dropped.
            let off: [usize; WV] = std::array::from_fn(|v| offset((vb + v).min(vectors - 1)));
            let sum = weight_tile(&runs, wo, &bufs.images, step, off, &bufs.dy_t, ld, cb);
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
