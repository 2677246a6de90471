//! Short rows with the rows across SIMD lanes: the kernel for batches of few classes.
//!
//! The row kernel (`super::hard::hard_row`) runs three sweeps per row plus a handful of per-row
//! scalars (`ln`, the target's terms). With 10 or 100 classes those fixed costs dominate:
//! each sweep is a vector or two and a remainder, and `exp`'s 20-instruction dependency
//! chain is paid per row. Here a tile of [`TILE`] rows is transposed so that lane `r` holds
//! row `r`: every sweep then runs over classes with whole vectors, one per class, and the
//! per-row scalars (`max`, the sum, `ln`, the gradient's coefficient) are lane arrays too.
//!
//! Only the plain hard-target losses come here ([`applies`]): ARB, cross-entropy, balanced
//! softmax and class-balanced weights, with one label per row. Mixup pairs, margins, focal
//! loss, label smoothing and soft targets keep the row kernel.
use super::simd::{MulAdd, SimdFloat};
use super::{Consts, MaybeUninit};
use crate::backend::FusedLossParams;
use crate::Float;

/// Rows per tile: one AVX-512 register of f32 (two of f64; two AVX2 registers of f32).
pub const TILE: usize = 16;

/// Widest rows this kernel takes. Whole op at B = 128 on one thread, tiles against the
/// grouped row kernel (`plain.rs`): 4.0 against 13.4 us at C = 10, 6.4 against 9.8 at 24,
/// 7.5 against 12.4 at 28; from 32 up the two trade places within about 10% (9.2 / 9.5 at
/// 40, 11.1 / 10.4 at 48), and the rows win clearly at multiples of 32 (8.2 / 6.3 at 32,
/// 13.9 / 8.1 at 64), where they have no remainder loop.
pub const MAX_COLS: usize = 31;

/// Whether `p` is a loss this kernel computes.
pub fn applies(p: &FusedLossParams, dense: bool) -> bool {
    !dense && p.cols <= MAX_COLS && p.is_plain_hard()
}

/// Per-task scratch: the tile's logits and its `u`/`exp`/gradient values, class-major
/// (`[cols][TILE]`).
pub struct Scratch<T> {
    z: Vec<[T; TILE]>,
    e: Vec<[T; TILE]>,
}

impl<T: Float> Scratch<T> {
    pub fn new(cols: usize) -> Self {
        Scratch {
            z: vec![[T::ZERO; TILE]; cols],
            e: vec![[T::ZERO; TILE]; cols],
        }
    }
}

/// Up to [`TILE`] rows starting at row `r0`: `z` and `g` hold exactly those rows, `l` their
/// losses. Returns the first (row, column) holding a non-finite logit, if any.
#[inline(always)]
pub fn hard_tile<T: SimdFloat, M: MulAdd>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    l: &mut [T],
    r0: usize,
    k: &Consts<T>,
    s: &mut Scratch<T>,
) -> Option<(usize, usize)> {
    let (cols, n) = (k.cols, l.len());
    let (zt, et) = (&mut s.z[..cols], &mut s.e[..cols]);
    transpose_in(z, zt, n);
    let (sum, lse) = sweep_exp_lanes::<T, M>(zt, et, k);
    let rows = tile_targets(zt, et, &sum, &lse, r0, n, k);
    if let Some(bad) = first_non_finite(z, &sum, cols, n) {
        return Some((r0 + bad.0, bad.1));
    }
    l.copy_from_slice(&rows.loss[..n]);
    sweep_grad_lanes(zt, et, &rows, n, k);
    transpose_out(et, g, n);
    None
}

/// The tile's rows into `zt`, class-major; lanes past the last of the `n` rows keep
/// whatever an earlier tile left there (finite: results of those lanes are never written).
#[inline(always)]
fn transpose_in<T: Float>(z: &[T], zt: &mut [[T; TILE]], n: usize) {
    let cols = zt.len();
    if n == TILE {
        // A whole tile: per class, one strided read of 16 rows (a gather).
        for (j, zj) in zt.iter_mut().enumerate() {
            for r in 0..TILE {
                zj[r] = z[r * cols + j];
            }
        }
    } else {
        // Row by row (contiguous reads).
        for (r, z_row) in z.chunks_exact(cols).enumerate() {
            for (zj, &v) in zt.iter_mut().zip(z_row) {
                zj[r] = v;
            }
        }
    }
}

/// Sweeps 1 and 2 across the lanes: `u = scale * clamp(z) + o` and each row's maximum,
/// then `e = exp(u - m)` into `et`; returns each row's sum of `e` and its log-sum-exp.
/// `z * 0` turns a non-finite logit into a NaN `u` (see `super::sweep_logits`).
#[inline(always)]
fn sweep_exp_lanes<T: SimdFloat, M: MulAdd>(
    zt: &[[T; TILE]],
    et: &mut [[T; TILE]],
    k: &Consts<T>,
) -> ([T; TILE], [T; TILE]) {
    let u = k.logits();
    let mut m = [T::NEG_INFINITY; TILE];
    for ((zj, ej), &o) in zt.iter().zip(et.iter_mut()).zip(&k.offsets) {
        for r in 0..TILE {
            ej[r] = u.of_lanes(zj[r], o) + zj[r] * T::ZERO;
            m[r] = m[r].maxnum(ej[r]);
        }
    }
    let mut sum = [T::ZERO; TILE];
    for ej in et.iter_mut() {
        for r in 0..TILE {
            ej[r] = (ej[r] - m[r]).exp_below_88_at::<M>();
            sum[r] += ej[r];
        }
    }
    let mut lse = [T::ZERO; TILE];
    for r in 0..TILE {
        lse[r] = m[r] + sum[r].fast_ln();
    }
    (sum, lse)
}

/// Per row of a tile, as lane arrays: the label, the loss, the gradient's coefficient on
/// `e_j` and the target entry of the gradient.
struct TileRows<T> {
    y: [usize; TILE],
    loss: [T; TILE],
    a: [T; TILE],
    target: [T; TILE],
}

/// With label `y` and coefficient `c`: the loss `c (lse - u_y)`, the gradient's
/// coefficient on `e_j`, `a = gs c / S`, and the target entry `gs c (e_y / S - 1)`.
#[inline(always)]
fn tile_targets<T: SimdFloat>(
    zt: &[[T; TILE]],
    et: &[[T; TILE]],
    sum: &[T; TILE],
    lse: &[T; TILE],
    r0: usize,
    n: usize,
    k: &Consts<T>,
) -> TileRows<T> {
    let u = k.logits();
    let gs = T::from_f64(k.p.scale * k.p.grad_scale);
    let (mut y, mut c, mut zy, mut oy, mut ey) = (
        [0; TILE],
        [T::ZERO; TILE],
        [T::ZERO; TILE],
        [T::ZERO; TILE],
        [T::ZERO; TILE],
    );
    let (labels, coefs) = (&k.p.labels[r0..r0 + n], &k.p.coefs[r0..r0 + n]);
    for (r, (&label, &coef)) in labels.iter().zip(coefs).enumerate() {
        (y[r], c[r]) = (label, T::from_f64(coef));
        (zy[r], oy[r], ey[r]) = (zt[label][r], k.offsets[label], et[label][r]);
    }
    let (mut loss, mut a, mut target) = ([T::ZERO; TILE], [T::ZERO; TILE], [T::ZERO; TILE]);
    for r in 0..TILE {
        loss[r] = c[r] * (lse[r] - u.of_lanes(zy[r], oy[r]));
        let gc = gs * c[r];
        a[r] = gc / sum[r];
        target[r] = if u.passes(zy[r]) {
            a[r] * ey[r] - gc
        } else {
            T::ZERO
        };
    }
    TileRows { y, loss, a, target }
}

/// The first (row within the tile, column) of a non-finite logit among the `n` rows: only
/// rows whose sum came out NaN are searched.
#[inline(always)]
fn first_non_finite<T: Float>(
    z: &[T],
    sum: &[T; TILE],
    cols: usize,
    n: usize,
) -> Option<(usize, usize)> {
    for r in 0..n {
        if sum[r].to_f64().is_nan() {
            let row = &z[r * cols..(r + 1) * cols];
            if let Some(col) = row.iter().position(|v| !v.is_finite()) {
                return Some((r, col));
            }
        }
    }
    None
}

/// Sweep 3 across the lanes: `g_j = a e_j`, zero where the clamp stops the gradient; then
/// the targets' entries.
#[inline(always)]
fn sweep_grad_lanes<T: SimdFloat>(
    zt: &[[T; TILE]],
    et: &mut [[T; TILE]],
    rows: &TileRows<T>,
    n: usize,
    k: &Consts<T>,
) {
    let u = k.logits();
    for (zj, ej) in zt.iter().zip(et.iter_mut()) {
        for r in 0..TILE {
            let v = ej[r] * rows.a[r];
            ej[r] = if u.passes(zj[r]) { v } else { T::ZERO };
        }
    }
    for r in 0..n {
        et[rows.y[r]][r] = rows.target[r];
    }
}

/// The tile's gradient out of `et` into the `n` rows of `g`.
#[inline(always)]
fn transpose_out<T: Float>(et: &[[T; TILE]], g: &mut [MaybeUninit<T>], n: usize) {
    let cols = et.len();
    if n == TILE {
        // A whole tile: per class, one strided write of 16 rows (a scatter).
        for (j, ej) in et.iter().enumerate() {
            for r in 0..TILE {
                g[r * cols + j].write(ej[r]);
            }
        }
    } else {
        // Row by row (contiguous writes).
        for (r, g_row) in g.chunks_exact_mut(cols).enumerate() {
            for (gv, ej) in g_row.iter_mut().zip(et.iter()) {
                gv.write(ej[r]);
            }
        }
    }
}

/// Rows `r0..` (any count) tile by tile into `g` and `l`; see [`hard_tile`].
#[inline(always)]
pub fn run_tiles<T: SimdFloat, M: MulAdd>(
    z: &[T],
    k: &Consts<T>,
    r0: usize,
    g: &mut [MaybeUninit<T>],
    l: &mut [T],
) -> Option<(usize, usize)> {
    let cols = k.cols;
    let mut scratch = Scratch::new(cols);
    let tiles = g.chunks_mut(TILE * cols).zip(l.chunks_mut(TILE));
    for (t, (g, l)) in tiles.enumerate() {
        let first = r0 + t * TILE;
        let z = &z[first * cols..(first + l.len()) * cols];
        if let Some(problem) = hard_tile::<T, M>(z, g, l, first, k, &mut scratch) {
            return Some(problem);
        }
    }
    None
}
