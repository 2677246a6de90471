//! The three linear maps of Winograd's F(2x2, 3x3): a 3x3 kernel `g` becomes the 4x4
//! `U = G g G^T`, a 4x4 input tile `d` becomes `V = B^T d B`, and the 4x4 elementwise
//! product `M = U . V` (summed over input channels) becomes the 2x2 output tile
//! `A^T M A`, with
//!
//! ```text
//!        [1  0  0]          [1  0 -1  0]
//!    G = [½  ½  ½]    B^T = [0  1  1  0]    A^T = [1  1  1  0]
//!        [½ -½  ½]          [0 -1  1  0]          [0  1 -1 -1]
//!        [0  0  1]          [0  1  0 -1]
//! ```
//!
//! Each 2-D map is its 1-D map applied along the rows, then along the columns. The input
//! and output maps act on vectors of `N` channels at once (every channel transforms
//! alike), so they are adds and subtracts of whole vectors; the kernel map runs once per
//! call, in f64, rounded once.
//!
//! The weight gradient runs two of them backwards (their adjoints, the transposed
//! matrices): a 2x2 output-gradient tile `dy` becomes `dM = A dy A^T`, and the summed
//! `dU = sum dM . V` becomes the 3x3 kernel gradient `G^T dU G`.
use super::super::direct::Lanes;

/// Tile elements: the 16 entries of a 4x4 transformed tile, one product per element.
pub const ELEMENTS: usize = 16;

/// `a - b`, as a multiply-add by -1 (exact: [`Lanes`] has no subtract).
#[inline(always)]
fn sub<L: Lanes>(a: L::V, b: L::V) -> L::V {
    L::mul_add(L::splat(-1.0), b, a)
}

/// `G g` for one column (or row) `g` of a kernel.
fn kernel_1d(g: [f64; 3]) -> [f64; 4] {
    [
        g[0],
        0.5 * (g[0] + g[1] + g[2]),
        0.5 * (g[0] - g[1] + g[2]),
        g[2],
    ]
}

/// `U = G g G^T` of a row-major 3x3 kernel, row-major 4x4.
pub fn kernel(g: &[f32]) -> [f32; ELEMENTS] {
    let mut rows = [[0.0f64; 4]; 3];
    for (ky, row) in rows.iter_mut().enumerate() {
        *row = kernel_1d(std::array::from_fn(|kx| f64::from(g[ky * 3 + kx])));
    }
    let mut u = [0.0f32; ELEMENTS];
    for ex in 0..4 {
        let column = kernel_1d([rows[0][ex], rows[1][ex], rows[2][ex]]);
        for (ey, &v) in column.iter().enumerate() {
            u[ey * 4 + ex] = v as f32;
        }
    }
    u
}

/// `G^T u` for one column (or row) `u` of a kernel's gradient `dU`.
fn kernel_grad_1d(u: [f64; 4]) -> [f64; 3] {
    [
        u[0] + 0.5 * (u[1] + u[2]),
        0.5 * (u[1] - u[2]),
        0.5 * (u[1] + u[2]) + u[3],
    ]
}

/// `G^T dU G` of a row-major 4x4 `dU`: the row-major 3x3 kernel gradient, in f64 and
/// rounded once (it runs once per channel pair, not per tile).
pub fn kernel_grad(du: &[f32]) -> [f32; 9] {
    let du: &[f32; ELEMENTS] = du.try_into().expect("16 elements");
    // `rows[ey]`: `dU G`, along each row `ey`.
    let mut rows = [[0.0f64; 3]; 4];
    for (ey, row) in rows.iter_mut().enumerate() {
        *row = kernel_grad_1d(std::array::from_fn(|ex| f64::from(du[ey * 4 + ex])));
    }
    let mut g = [0.0f32; 9];
    for kx in 0..3 {
        let column = kernel_grad_1d([rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx]]);
        for (ky, &v) in column.iter().enumerate() {
            g[ky * 3 + kx] = v as f32;
        }
    }
    g
}

/// `B^T d` for four vectors `d`.
#[inline(always)]
fn input_1d<L: Lanes>(d: [L::V; 4]) -> [L::V; 4] {
    [
        sub::<L>(d[0], d[2]),
        L::add(d[1], d[2]),
        sub::<L>(d[2], d[1]),
        sub::<L>(d[1], d[3]),
    ]
}

/// `V = B^T d B` for `N` channels of one tile, from a channels-last image with
/// `channels` floats per pixel and `row` per row (the tile's first pixel at `at`), to
/// `dst[out + e*stride]` for element `e`.
#[inline(always)]
pub fn input<L: Lanes>(
    src: &[f32],
    (at, row): (usize, usize),
    dst: &mut [f32],
    (out, stride): (usize, usize),
    channels: usize,
) {
    // Plain loops, not `array::from_fn`: a closure is compiled without the level's
    // features, so its intrinsics would be calls. Slices cut once per row, so that
    // (with `channels` a constant) the loads need no checks of their own.
    let mut rows = [[L::zero(); 4]; 4];
    for (i, r) in rows.iter_mut().enumerate() {
        let pixels = &src[at + i * row..][..3 * channels + L::N];
        for (j, v) in r.iter_mut().enumerate() {
            *v = L::load(pixels, j * channels);
        }
    }
    // `half[ey][j]`: `B^T d`, down each column `j`.
    let mut half = [[L::zero(); 4]; 4];
    for j in 0..4 {
        let column = input_1d::<L>([rows[0][j], rows[1][j], rows[2][j], rows[3][j]]);
        for (ey, &v) in column.iter().enumerate() {
            half[ey][j] = v;
        }
    }
    let dst = &mut dst[out..out + (ELEMENTS - 1) * stride + L::N];
    for (ey, &row) in half.iter().enumerate() {
        let v = input_1d::<L>(row);
        for (ex, &v) in v.iter().enumerate() {
            L::store(dst, (ey * 4 + ex) * stride, v);
        }
    }
}

/// `A^T m` for four vectors `m`.
#[inline(always)]
fn output_1d<L: Lanes>(m: [L::V; 4]) -> [L::V; 2] {
    [
        L::add(L::add(m[0], m[1]), m[2]),
        sub::<L>(sub::<L>(m[1], m[2]), m[3]),
    ]
}

/// `A^T M A` for `N` channels of one tile: element `e` of `M` at `src[at + e*stride]`,
/// output pixel `(i, j)` stored at `dst[out + i*row + j*channels]` plus `bias`, and
/// clamped at 0 when `relu` (the eval fold; a zero bias otherwise).
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
    let mut half = [[L::zero(); 4]; 2];
    // The index writes a column of `half`, which no iterator over it yields.
    #[allow(clippy::needless_range_loop)]
    for ex in 0..4 {
        let mut m = [L::zero(); 4];
        for (ey, v) in m.iter_mut().enumerate() {
            *v = L::load(src, (ey * 4 + ex) * stride);
        }
        for (i, &v) in output_1d::<L>(m).iter().enumerate() {
            half[i][ex] = v;
        }
    }
    for (i, &pair) in half.iter().enumerate() {
        let y = output_1d::<L>(pair);
        let pixels = &mut dst[out + i * row..][..channels + L::N];
        for (j, &v) in y.iter().enumerate() {
            let v = L::add(v, bias);
            L::store(
                pixels,
                j * channels,
                if relu { L::max(v, L::zero()) } else { v },
            );
        }
    }
}

/// `A d` for the two vectors of one column (or row) `d` of an output-gradient tile.
#[inline(always)]
fn output_grad_1d<L: Lanes>(d: [L::V; 2]) -> [L::V; 4] {
    [
        d[0],
        L::add(d[0], d[1]),
        sub::<L>(d[0], d[1]),
        sub::<L>(L::zero(), d[1]),
    ]
}

/// `dM = A dy A^T` for `N` channels of one 2x2 output-gradient tile, from a
/// channels-last gradient with `channels` floats per pixel and `row` per row (the tile's
/// first pixel at `at`), to `dst[out + e*stride]` for element `e`: the adjoint of
/// [`output`].
#[inline(always)]
pub fn output_grad<L: Lanes>(
    src: &[f32],
    (at, row): (usize, usize),
    dst: &mut [f32],
    (out, stride): (usize, usize),
    channels: usize,
) {
    let mut d = [[L::zero(); 2]; 2];
    for (i, r) in d.iter_mut().enumerate() {
        let pixels = &src[at + i * row..][..channels + L::N];
        for (j, v) in r.iter_mut().enumerate() {
            *v = L::load(pixels, j * channels);
        }
    }
    // `half[ey][j]`: `A dy`, down each column `j`.
    let mut half = [[L::zero(); 2]; 4];
    for j in 0..2 {
        for (ey, &v) in output_grad_1d::<L>([d[0][j], d[1][j]]).iter().enumerate() {
            half[ey][j] = v;
        }
    }
    let dst = &mut dst[out..out + (ELEMENTS - 1) * stride + L::N];
    for (ey, &pair) in half.iter().enumerate() {
        for (ex, &v) in output_grad_1d::<L>(pair).iter().enumerate() {
            L::store(dst, (ey * 4 + ex) * stride, v);
        }
    }
}
