//! The three linear maps of Winograd's F(4x4, 3x3) (Lavin and Gray's matrices): a 3x3
//! kernel `g` becomes the 6x6 `U = G g G^T`, a 6x6 input tile `d` becomes `V = B^T d B`,
//! and the summed product `M` becomes the 4x4 output tile `A^T M A`, with
//!
//! ```text
//!        [ 1/4     0     0  ]          [4  0 -5  0  1  0]
//!        [-1/6  -1/6  -1/6  ]          [0 -4 -4  1  1  0]          [1  1  1  1  1  0]
//!    G = [-1/6   1/6  -1/6  ]    B^T = [0  4 -4 -1  1  0]    A^T = [0  1 -1  2 -2  0]
//!        [1/24  1/12   1/6  ]          [0 -2 -1  2  1  0]          [0  1  1  4  4  0]
//!        [1/24 -1/12   1/6  ]          [0  2 -1 -2  1  0]          [0  1 -1  8 -8  1]
//!        [  0     0     1   ]          [0  4  0 -5  0  1]
//! ```
//!
//! Each output tile of 16 pixels costs 36 multiplies per channel pair, against
//! F(2x2, 3x3)'s 4 x 16 = 64 for the same pixels (`transform.rs`) and the direct sum's
//! 144, while the transforms cost about as much per pixel as F(2x2, 3x3)'s (a 6x6 tile
//! covers 16 outputs where a 4x4 one covers 4). The price is accuracy: the constants
//! reach 5 and 8, so the rounding error can grow about 36 times faster (`tests.rs`
//! states the bound). As in `transform.rs`, each 2-D map is its 1-D map down the
//! columns, then along the rows, on vectors of `N` channels.
use super::super::direct::Lanes;

/// Tile elements: the 36 entries of a 6x6 transformed tile.
pub const ELEMENTS: usize = 36;

/// `a - b`, as a multiply-add by -1 (exact: [`Lanes`] has no subtract).
#[inline(always)]
fn sub<L: Lanes>(a: L::V, b: L::V) -> L::V {
    L::mul_add(L::splat(-1.0), b, a)
}

/// `k a + b` for a constant `k`.
#[inline(always)]
fn scaled<L: Lanes>(k: f32, a: L::V, b: L::V) -> L::V {
    L::mul_add(L::splat(k), a, b)
}

/// `G g` for one column (or row) `g` of a kernel, in f64.
fn kernel_1d(g: [f64; 3]) -> [f64; 6] {
    let (even, odd) = (g[0] + g[2], g[1]);
    [
        g[0] / 4.0,
        -(even + odd) / 6.0,
        -(even - odd) / 6.0,
        (g[0] / 4.0 + g[1] / 2.0 + g[2]) / 6.0,
        (g[0] / 4.0 - g[1] / 2.0 + g[2]) / 6.0,
        g[2],
    ]
}

/// `U = G g G^T` of a row-major 3x3 kernel, row-major 6x6, in f64 and rounded once.
pub fn kernel(g: &[f32]) -> [f32; ELEMENTS] {
    let mut rows = [[0.0f64; 6]; 3];
    for (ky, row) in rows.iter_mut().enumerate() {
        *row = kernel_1d(std::array::from_fn(|kx| f64::from(g[ky * 3 + kx])));
    }
    let mut u = [0.0f32; ELEMENTS];
    for ex in 0..6 {
        let column = kernel_1d([rows[0][ex], rows[1][ex], rows[2][ex]]);
        for (ey, &v) in column.iter().enumerate() {
            u[ey * 6 + ex] = v as f32;
        }
    }
    u
}

/// `B^T d` for six vectors `d`: 13 operations, sharing `d4 - 4 d2`, `d3 - 4 d1`,
/// `d4 - d2` and `2 (d3 - d1)` between rows 1 to 4.
#[inline(always)]
fn input_1d<L: Lanes>(d: [L::V; 6]) -> [L::V; 6] {
    let four = scaled::<L>(-4.0, d[2], d[4]);
    let three = scaled::<L>(-4.0, d[1], d[3]);
    let two = sub::<L>(d[4], d[2]);
    let one = sub::<L>(d[3], d[1]);
    let one = L::add(one, one);
    [
        scaled::<L>(4.0, d[0], scaled::<L>(-5.0, d[2], d[4])),
        L::add(four, three),
        sub::<L>(four, three),
        L::add(two, one),
        sub::<L>(two, one),
        scaled::<L>(4.0, d[1], scaled::<L>(-5.0, d[3], d[5])),
    ]
}

/// `V = B^T d B` for `N` channels of one tile, from a channels-last image with
/// `channels` floats per pixel and `row` per row (the tile's first pixel at `at`), to
/// `dst[out + e*stride]` for element `e` (as `transform::input`).
#[inline(always)]
pub fn input<L: Lanes>(
    src: &[f32],
    (at, row): (usize, usize),
    dst: &mut [f32],
    (out, stride): (usize, usize),
    channels: usize,
) {
    // Column by column: six loads, six results into `half` (36 vectors: more than the
    // registers hold, so `half` lives in L1 between the two passes).
    let src = &src[at..at + 5 * row + 5 * channels + L::N];
    let mut half = [[L::zero(); 6]; 6];
    // The index writes a column of `half`, which no iterator over it yields.
    #[allow(clippy::needless_range_loop)]
    for j in 0..6 {
        let mut d = [L::zero(); 6];
        for (i, d) in d.iter_mut().enumerate() {
            *d = L::load(src, i * row + j * channels);
        }
        for (ey, &v) in input_1d::<L>(d).iter().enumerate() {
            half[ey][j] = v;
        }
    }
    let dst = &mut dst[out..out + (ELEMENTS - 1) * stride + L::N];
    for (ey, &r) in half.iter().enumerate() {
        for (ex, &v) in input_1d::<L>(r).iter().enumerate() {
            L::store(dst, (ey * 6 + ex) * stride, v);
        }
    }
}

/// `A^T m` for six vectors `m`: 10 operations.
#[inline(always)]
fn output_1d<L: Lanes>(m: [L::V; 6]) -> [L::V; 4] {
    let (sum12, diff12) = (L::add(m[1], m[2]), sub::<L>(m[1], m[2]));
    let (sum34, diff34) = (L::add(m[3], m[4]), sub::<L>(m[3], m[4]));
    [
        L::add(L::add(m[0], sum12), sum34),
        scaled::<L>(2.0, diff34, diff12),
        scaled::<L>(4.0, sum34, sum12),
        L::add(scaled::<L>(8.0, diff34, diff12), m[5]),
    ]
}

/// `A^T M A` for `N` channels of one tile: element `e` of `M` at `src[at + e*stride]`,
/// output pixel `(i, j)` stored at `dst[out + i*row + j*channels]` plus `bias`, and
/// clamped at 0 when `relu` (as `transform::output`).
#[inline(always)]
pub fn output<L: Lanes>(
    (src, at, stride): (&[f32], usize, usize),
    dst: &mut [f32],
    (out, row): (usize, usize),
    channels: usize,
    (bias, relu): (L::V, bool),
) {
    let src = &src[at..at + (ELEMENTS - 1) * stride + L::N];
    // `half[i][ex]`: `A^T M`, down each column `ex`.
    let mut half = [[L::zero(); 6]; 4];
    // The index writes a column of `half`, which no iterator over it yields.
    #[allow(clippy::needless_range_loop)]
    for ex in 0..6 {
        let mut m = [L::zero(); 6];
        for (ey, v) in m.iter_mut().enumerate() {
            *v = L::load(src, (ey * 6 + ex) * stride);
        }
        for (i, &v) in output_1d::<L>(m).iter().enumerate() {
            half[i][ex] = v;
        }
    }
    let dst = &mut dst[out..out + 3 * row + 3 * channels + L::N];
    for (i, &r) in half.iter().enumerate() {
        for (j, &v) in output_1d::<L>(r).iter().enumerate() {
            let v = L::add(v, bias);
            L::store(
                dst,
                i * row + j * channels,
                if relu { L::max(v, L::zero()) } else { v },
            );
        }
    }
}

/// `G^T u` for one column (or row) `u` of a kernel's gradient `dU`, in f64.
fn kernel_grad_1d(u: [f64; 6]) -> [f64; 3] {
    let (sum12, diff12) = (u[1] + u[2], u[2] - u[1]);
    let (sum34, diff34) = (u[3] + u[4], u[3] - u[4]);
    [
        u[0] / 4.0 - sum12 / 6.0 + sum34 / 24.0,
        diff12 / 6.0 + diff34 / 12.0,
        (sum34 - sum12) / 6.0 + u[5],
    ]
}

/// `G^T dU G` of a row-major 6x6 `dU`: the row-major 3x3 kernel gradient, in f64 and
/// rounded once.
pub fn kernel_grad(du: &[f32]) -> [f32; 9] {
    // `rows[ey]`: `dU G`, along each row `ey`.
    let mut rows = [[0.0f64; 3]; 6];
    for (ey, row) in rows.iter_mut().enumerate() {
        *row = kernel_grad_1d(std::array::from_fn(|ex| f64::from(du[ey * 6 + ex])));
    }
    let mut g = [0.0f32; 9];
    for kx in 0..3 {
        let column = kernel_grad_1d(std::array::from_fn(|ey| rows[ey][kx]));
        for (ky, &v) in column.iter().enumerate() {
            g[ky * 3 + kx] = v as f32;
        }
    }
    g
}

/// `A d` for the four vectors of one column (or row) `d` of an output-gradient tile: the
/// adjoint of [`output_1d`].
#[inline(always)]
fn output_grad_1d<L: Lanes>(d: [L::V; 4]) -> [L::V; 6] {
    let (even, odd) = (L::add(d[0], d[2]), L::add(d[1], d[3]));
    // `d0 + 4 d2` and `2 d1 + 8 d3 = 2 (d1 + 4 d3)`.
    let even4 = scaled::<L>(4.0, d[2], d[0]);
    let odd4 = scaled::<L>(4.0, d[3], d[1]);
    let odd4 = L::add(odd4, odd4);
    [
        d[0],
        L::add(even, odd),
        sub::<L>(even, odd),
        L::add(even4, odd4),
        sub::<L>(even4, odd4),
        d[3],
    ]
}

/// `dM = A dy A^T` for `N` channels of one 4x4 output-gradient tile, from a
/// channels-last gradient with `channels` floats per pixel and `row` per row (the tile's
/// first pixel at `at`), to `dst[out + e*stride]` for element `e`: the adjoint of
/// [`output`] (as `transform::output_grad`).
#[inline(always)]
pub fn output_grad<L: Lanes>(
    src: &[f32],
    (at, row): (usize, usize),
    dst: &mut [f32],
    (out, stride): (usize, usize),
    channels: usize,
) {
    let src = &src[at..at + 3 * row + 3 * channels + L::N];
    // `half[ey][j]`: `A dy`, down each column `j`.
    let mut half = [[L::zero(); 4]; 6];
    #[allow(clippy::needless_range_loop)]
    for j in 0..4 {
        let mut d = [L::zero(); 4];
        for (i, d) in d.iter_mut().enumerate() {
            *d = L::load(src, i * row + j * channels);
        }
        for (ey, &v) in output_grad_1d::<L>(d).iter().enumerate() {
            half[ey][j] = v;
        }
    }
    let dst = &mut dst[out..out + (ELEMENTS - 1) * stride + L::N];
    for (ey, &r) in half.iter().enumerate() {
        for (ex, &v) in output_grad_1d::<L>(r).iter().enumerate() {
            L::store(dst, (ey * 6 + ex) * stride, v);
        }
    }
}
