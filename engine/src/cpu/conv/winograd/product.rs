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

/// One `R x NV` tile of `m = v u`: rows `r0..r0 + R` of `v` (`depth` scalars each, `ldv`
/// apart), output-channel vectors from `c0` of `u` (`ldu` per row), stored into `m`
/// (`ldm` per row). Each operand is cut (and bounds-checked) once per tile, and the steps
/// read inside those cuts unchecked: with a check per step (and `ldu` a variable, kept
/// on the stack) the AVX2 loop spent 10 scalar instructions beside its 12 multiply-adds
/// per step, and as a slice check per store, 8 per vector stored.
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
    assert!(depth > 0 && depth <= ldv && NV * L::N <= ldu);
    let v = &v[r0 * ldv..][..(R - 1) * ldv + depth];
    let u = &u[c0..][..(depth - 1) * ldu + NV * L::N];
    let m = &mut m[r0 * ldm + c0..][..(R - 1) * ldm + NV * L::N];
    let mut sum = [[L::zero(); NV]; R];
    for k in 0..depth {
        let mut b = [L::zero(); NV];
        for (j, b) in b.iter_mut().enumerate() {
            // SAFETY: `k ldu + j N + N <= (depth - 1) ldu + NV N`, `u`'s length.
            *b = unsafe { L::load_ptr(u.as_ptr().add(k * ldu + j * L::N)) };
        }
        for (i, row) in sum.iter_mut().enumerate() {
            // SAFETY: `i ldv + k < (R - 1) ldv + depth`, `v`'s length.
            let a = L::splat(unsafe { *v.get_unchecked(i * ldv + k) });
            for (acc, &b) in row.iter_mut().zip(&b) {
                *acc = L::mul_add(a, b, *acc);
            }
        }
    }
    for (i, row) in sum.iter().enumerate() {
        for (j, &s) in row.iter().enumerate() {
            L::store(m, i * ldm + j * L::N, s);
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
            // ResNet's channel counts as constants, so that the rows of `v`, `u` and `m`
            // are fixed offsets from one pointer each.
            match (depth, cols) {
                (16, 16) => tile::<L, R, NV>(v, (16, 16), u, 16, m, 16, (r0, c0)),
                (32, 32) => tile::<L, R, NV>(v, (32, 32), u, 32, m, 32, (r0, c0)),
                (64, 64) => tile::<L, R, NV>(v, (64, 64), u, 64, m, 64, (r0, c0)),
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

/// Rows of `V` one register tile covers for `cols` output channels and `tiles` tiles
/// per image: [`shape`]'s, or a shorter tile where that one would leave more than a
/// tenth of the rows it computes idle. An image's tiles are padded to whole register
/// tiles, and small images have few: F(4x4, 3x3) on 8x8 has 4, which 6-row tiles ran
/// as 6 (a third of the products wasted; it measured 8-20% slower than F(2x2, 3x3)
/// there), and 16x16 has 16, which AVX-512's 12-row tiles ran as 24.
pub fn rows_per_tile<L: Lanes>(cols: usize, tiles: usize) -> usize {
    let (rows, _) = shape(L::N, cols);
    let shorter = match rows {
        12 => 8,
        6 => 4,
        _ => rows,
    };
    let idle = |r: usize| tiles.next_multiple_of(r) - tiles;
    if idle(rows) * 10 > tiles && idle(shorter) < idle(rows) {
        shorter
    } else {
        rows
    }
}

/// `M[e] = V[e] U[e]` for each of the `elements` elements `e`, on the first `rows` tiles
/// (a multiple of `r`, [`rows_per_tile`]) of blocks of `block` tiles: `v` is
/// `[element][block][depth]`, `u` `[element][depth][cols]` and `m` `[element][block][cols]`.
#[inline(always)]
pub fn elementwise_products<L: Lanes>(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    (rows, depth, cols): (usize, usize, usize),
    (block, elements, r): (usize, usize, usize),
) {
    let dims = (rows, depth, cols);
    let (_, vectors) = shape(L::N, cols);
    for e in 0..elements {
        let (v, u) = (
            &v[e * block * depth..(e * block + rows) * depth],
            &u[e * depth * cols..(e + 1) * depth * cols],
        );
        let m = &mut m[e * block * cols..(e * block + rows) * cols];
        match (r, vectors) {
            (6, 4) => product::<L, 6, 4>(v, u, m, dims),
            (4, 4) => product::<L, 4, 4>(v, u, m, dims),
            (12, 2) => product::<L, 12, 2>(v, u, m, dims),
            (8, 2) => product::<L, 8, 2>(v, u, m, dims),
            (12, 1) => product::<L, 12, 1>(v, u, m, dims),
            (6, 2) => product::<L, 6, 2>(v, u, m, dims),
            (4, 2) => product::<L, 4, 2>(v, u, m, dims),
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
    (block, elements): (usize, usize),
) {
    let dims = (tiles, rows, cols);
    for e in 0..elements {
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
