//! The batched product at the heart of Winograd: for each of the 16 tile elements `e`,
//! `M[e] = V[e] U[e]`, where row `t` of `V[e]` holds element `e` of tile `t`'s transformed
//! input channels and `U[e]` is `c_in x c_out` (element `e` of every transformed kernel).
//! `V` and `M` are stored `[element][tile][channel]`, so each product reads and writes
//! one contiguous run of rows. (They were `[tile][element][channel]`, a row of `V[e]` 16
//! rows from the next, a kilobyte apart at 16 channels. With contiguous rows the
//! AVX-512 product's share of a 16-channel forward's `perf` samples fell from about 55%
//! to 48%, and Winograd began to beat the direct kernel at 32 channels, see
//! `dispatch.rs`.)
//!
//! A register tile of `R x NV` vectors: `R` tiles' scalars broadcast, `NV` vectors of
//! output channels loaded from `U[e]`, one multiply-add each per input channel. The tile
//! shape fills the register file: AVX-512 has 32 vector registers, AVX2 and SSE/NEON 16.
//!
//! The weight gradient's product runs the other way, `dU[e] += V[e]^T dM[e]`: its
//! register tile holds `R` input channels by `NV` vectors of output channels of `dU[e]`
//! and streams the block's tiles through it (`elementwise_reductions`).
use super::super::direct::Lanes;
use super::transform::ELEMENTS;

/// One `R x NV` tile of `m = v u`: rows `r0..r0 + R` of `v` (`depth` scalars each, `ldv`
/// apart), output-channel vectors from `c0` of `u` (`ldu` per row), stored into `m`
/// (`ldm` per row). Each step's slices are cut (and bounds-checked) once, so that the
/// multiply-adds read them unchecked: with a check per broadcast the row offsets spilled
/// and the loop ran at half speed.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<L: Lanes, const R: usize, const NV: usize>(
    v: &[f32],
    (ldv, depth): (usize, usize),
    u: &[f32],
    ldu: usize,
    m: &mut [f32],
    ldm: usize,
    (r0, c0): (usize, usize),
) {
    let v = &v[r0 * ldv..(r0 + R - 1) * ldv + depth];
    let mut sum = [[L::zero(); NV]; R];
    for k in 0..depth {
        let u = &u[k * ldu + c0..][..NV * L::N];
        let mut b = [L::zero(); NV];
        for (j, b) in b.iter_mut().enumerate() {
            *b = L::load(u, j * L::N);
        }
        for (i, row) in sum.iter_mut().enumerate() {
            let a = L::splat(v[i * ldv + k]);
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

/// `M[e] = V[e] U[e]` for one element: `v` and `m` start at the element's first row.
#[inline(always)]
fn product<L: Lanes, const R: usize, const NV: usize>(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    (rows, depth, cols): (usize, usize, usize),
) {
    for r0 in (0..rows).step_by(R) {
        for c0 in (0..cols).step_by(NV * L::N) {
            // ResNet's channel counts as constants, so that `v`'s rows are fixed offsets
            // from one pointer.
            match depth {
                16 => tile::<L, R, NV>(v, (16, 16), u, cols, m, cols, (r0, c0)),
                32 => tile::<L, R, NV>(v, (32, 32), u, cols, m, cols, (r0, c0)),
                64 => tile::<L, R, NV>(v, (64, 64), u, cols, m, cols, (r0, c0)),
                _ => tile::<L, R, NV>(v, (depth, depth), u, cols, m, cols, (r0, c0)),
            }
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

/// `M[e] = V[e] U[e]` for every element `e`, on the first `rows` tiles (a multiple of
/// [`rows_per_tile`]) of blocks of `block` tiles: `v` is `[element][block][depth]`, `u`
/// `[element][depth][cols]` and `m` `[element][block][cols]`.
#[inline(always)]
pub fn elementwise_products<L: Lanes>(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    (rows, depth, cols): (usize, usize, usize),
    block: usize,
) {
    let dims = (rows, depth, cols);
    for e in 0..ELEMENTS {
        let (v, u) = (
            &v[e * block * depth..(e * block + rows) * depth],
            &u[e * depth * cols..(e + 1) * depth * cols],
        );
        let m = &mut m[e * block * cols..(e * block + rows) * cols];
        match shape(L::N, cols) {
            (6, 4) => product::<L, 6, 4>(v, u, m, dims),
            (12, 2) => product::<L, 12, 2>(v, u, m, dims),
            (12, 1) => product::<L, 12, 1>(v, u, m, dims),
            (6, 2) => product::<L, 6, 2>(v, u, m, dims),
            _ => product::<L, 8, 1>(v, u, m, dims),
        }
    }
}

/// One `R x NV` tile of the weight gradient's `du += v^T dm`, reduced over `tiles` rows
/// of `v` (`ldv` apart) and `dm` (`ldm` apart): rows `r0..r0 + R` of `du` are input
/// channels (`v`'s columns, broadcast), its `NV` vectors from `c0` output channels
/// (`dm`'s, loaded). The accumulators are loaded and stored once per block of tiles.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn reduction_tile<L: Lanes, const R: usize, const NV: usize>(
    (v, ldv): (&[f32], usize),
    (dm, ldm): (&[f32], usize),
    tiles: usize,
    du: &mut [f32],
    ldu: usize,
    (r0, c0): (usize, usize),
) {
    let mut sum = [[L::zero(); NV]; R];
    for (i, row) in sum.iter_mut().enumerate() {
        for (j, s) in row.iter_mut().enumerate() {
            *s = L::load(du, (r0 + i) * ldu + c0 + j * L::N);
        }
    }
    for t in 0..tiles {
        let (a, b) = (&v[t * ldv + r0..][..R], &dm[t * ldm + c0..][..NV * L::N]);
        let mut bv = [L::zero(); NV];
        for (j, bv) in bv.iter_mut().enumerate() {
            *bv = L::load(b, j * L::N);
        }
        for (row, &a) in sum.iter_mut().zip(a) {
            let a = L::splat(a);
            for (acc, &b) in row.iter_mut().zip(&bv) {
                *acc = L::mul_add(a, b, *acc);
            }
        }
    }
    for (i, row) in sum.iter().enumerate() {
        for (j, &s) in row.iter().enumerate() {
            L::store(du, (r0 + i) * ldu + c0 + j * L::N, s);
        }
    }
}

/// `du += v^T dm` for one element: `v` is `tiles x rows`, `dm` `tiles x cols`, `du`
/// `rows x cols`.
#[inline(always)]
fn reduction<L: Lanes, const R: usize, const NV: usize>(
    v: &[f32],
    dm: &[f32],
    du: &mut [f32],
    (tiles, rows, cols): (usize, usize, usize),
) {
    for r0 in (0..rows).step_by(R) {
        for c0 in (0..cols).step_by(NV * L::N) {
            let at = (r0, c0);
            // ResNet's channel counts as constants, as in `product`.
            match (rows, cols) {
                (16, 16) => reduction_tile::<L, R, NV>((v, 16), (dm, 16), tiles, du, 16, at),
                (32, 32) => reduction_tile::<L, R, NV>((v, 32), (dm, 32), tiles, du, 32, at),
                (64, 64) => reduction_tile::<L, R, NV>((v, 64), (dm, 64), tiles, du, 64, at),
                _ => reduction_tile::<L, R, NV>((v, rows), (dm, cols), tiles, du, cols, at),
            }
        }
    }
}

/// The weight gradient's tile shape for `cols` output channels: `R` must divide the
/// input channels (a multiple of `n`), and `R x NV` accumulators plus `NV` loaded
/// vectors (and on AVX2 and below a broadcast) fit the registers.
const fn reduction_shape(n: usize, cols: usize) -> (usize, usize) {
    let vectors = cols / n;
    match (n, vectors % 4, vectors % 2) {
        (16, 0, _) => (4, 4),
        (16, _, 0) => (8, 2),
        (16, _, _) => (16, 1),
        (_, _, 0) => (4, 2),
        _ => (4, 1),
    }
}

/// `dU[e] += V[e]^T dM[e]` for every element `e`, over the first `tiles` tiles of blocks
/// of `block`: `v` is `[element][block][rows]`, `dm` `[element][block][cols]` and `du`
/// `[element][rows][cols]` (`rows` and `cols` multiples of `N`).
#[inline(always)]
pub fn elementwise_reductions<L: Lanes>(
    v: &[f32],
    dm: &[f32],
    du: &mut [f32],
    (tiles, rows, cols): (usize, usize, usize),
    block: usize,
) {
    let dims = (tiles, rows, cols);
    for e in 0..ELEMENTS {
        let (v, dm) = (
            &v[e * block * rows..(e * block + tiles) * rows],
            &dm[e * block * cols..(e * block + tiles) * cols],
        );
        let du = &mut du[e * rows * cols..(e + 1) * rows * cols];
        match reduction_shape(L::N, cols) {
            (4, 4) => reduction::<L, 4, 4>(v, dm, du, dims),
            (8, 2) => reduction::<L, 8, 2>(v, dm, du, dims),
            (16, 1) => reduction::<L, 16, 1>(v, dm, du, dims),
            (4, 2) => reduction::<L, 4, 2>(v, dm, du, dims),
            _ => reduction::<L, 4, 1>(v, dm, du, dims),
        }
    }
}
