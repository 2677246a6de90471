//! The batched product at the heart of Winograd: for each of the 16 tile elements `e`,
//! `M[e] = V[e] U[e]`, where row `t` of `V[e]` holds element `e` of tile `t`'s transformed
//! input channels and `U[e]` is `c_in x c_out` (element `e` of every transformed kernel).
//!
//! A register tile of `R x NV` vectors: `R` tiles' scalars broadcast, `NV` vectors of
//! output channels loaded from `U[e]`, one multiply-add each per input channel. The tile
//! shape fills the register file: AVX-512 has 32 vector registers, AVX2 and SSE/NEON 16.
use super::super::direct::Lanes;

/// One `R x NV` tile of `m = v u`: rows `r0..r0 + R` of `v` (`depth` scalars each, `ldv`
/// apart), output-channel vectors from `c0` of `u` (`ldu` per row), stored into `m`
/// (`ldm` per row).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<L: Lanes, const R: usize, const NV: usize>(
    v: &[f32],
    ldv: usize,
    u: &[f32],
    ldu: usize,
    depth: usize,
    m: &mut [f32],
    ldm: usize,
    (r0, c0): (usize, usize),
) {
    let mut sum = [[L::zero(); NV]; R];
    for k in 0..depth {
        let mut b = [L::zero(); NV];
        for (j, b) in b.iter_mut().enumerate() {
            *b = L::load(u, k * ldu + c0 + j * L::N);
        }
        for (i, row) in sum.iter_mut().enumerate() {
            let a = L::splat(v[(r0 + i) * ldv + k]);
            for (acc, &b) in row.iter_mut().zip(&b) {
                *acc = L::mul_add(a, b, *acc);
            }
        }
    }
    for (i, row) in sum.iter().enumerate() {
        for (j, &s) in row.iter().enumerate() {
            L::store(m, (r0 + i) * ldm + c0 + j * L::N, s);
        }
    }
}

/// `m = v u` for `v: rows x depth` (`rows` a multiple of [`rows_per_tile`]), `u: depth x
/// cols` and `m: rows x cols`, all row-major with `cols` (a multiple of `N`) as the
/// leading dimension of `u` and `m`, and `depth` of `v`.
#[inline(always)]
fn product<L: Lanes, const R: usize, const NV: usize>(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    (rows, depth, cols): (usize, usize, usize),
) {
    for r0 in (0..rows).step_by(R) {
        for c0 in (0..cols).step_by(NV * L::N) {
            tile::<L, R, NV>(v, depth, u, cols, depth, m, cols, (r0, c0));
        }
    }
}

/// The tile shape for `cols` output channels: as many vectors across as divide them (up
/// to 4 on AVX-512, 2 below), and rows to fill the registers.
const fn shape(n: usize, cols: usize) -> (usize, usize) {
    let vectors = cols / n;
    match (n, vectors % 4, vectors % 2) {
        (16, 0, _) => (6, 4),
        (16, _, 0) => (12, 2),
        (16, _, _) => (12, 1),
        (_, _, 0) => (6, 2),
        _ => (8, 1),
    }
}

/// Rows of `V` one tile covers for `cols` output channels: the block of tiles the driver
/// transforms at once is a multiple of it.
pub fn rows_per_tile<L: Lanes>(cols: usize) -> usize {
    shape(L::N, cols).0
}

/// `M[e] = V[e] U[e]` for every element `e`, on the first `rows` rows (a multiple of
/// [`rows_per_tile`]) of `V[e]` and `M[e]`: `v` holds the 16 matrices `capacity x depth`
/// back to back, `u` the 16 `depth x cols`, `m` the 16 `capacity x cols`.
#[inline(always)]
pub fn elementwise_products<L: Lanes>(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    (rows, capacity, depth, cols): (usize, usize, usize, usize),
) {
    let dims = (rows, depth, cols);
    let (vs, us, ms) = (capacity * depth, depth * cols, capacity * cols);
    for e in 0..super::transform::ELEMENTS {
        let (v, u) = (&v[e * vs..(e + 1) * vs], &u[e * us..(e + 1) * us]);
        let m = &mut m[e * ms..(e + 1) * ms];
        match shape(L::N, cols) {
            (6, 4) => product::<L, 6, 4>(v, u, m, dims),
            (12, 2) => product::<L, 12, 2>(v, u, m, dims),
            (12, 1) => product::<L, 12, 1>(v, u, m, dims),
            (6, 2) => product::<L, 6, 2>(v, u, m, dims),
            _ => product::<L, 8, 1>(v, u, m, dims),
        }
    }
}
