//! [`Lanes`]: the vector operations the direct convolution is written over, one
//! implementation per dispatch level ([`super::isa`]), and the row helpers built on them:
//! bounds-checked copies, splitting a row into its stride phases and back, transposing
//! rows.
//!
//! Every function here is `#[inline(always)]`: it is compiled into the caller's
//! `target_feature` function ([`Lanes::run`]), which is what turns a lane type's intrinsics
//! (or, for the portable type, its plain array loops) into that level's instructions.
use crate::cpu::simd::Level;
use std::mem::MaybeUninit;

/// The widest vector any level has, in f32 lanes (AVX-512): the size of scratch arrays.
pub const MAX_LANES: usize = 16;

/// A float that vectors are stored into: an `f32`, or a `MaybeUninit<f32>` of an output
/// being written for the first time (zeroing it first would cost a pass over memory).
pub trait Slot: Copy {}
impl Slot for f32 {}
// Same layout as `f32` (`MaybeUninit` is `repr(transparent)`).
impl Slot for MaybeUninit<f32> {}

/// One level's f32 vector and its register tiles.
///
/// The tile shapes are per level because the register files differ: AVX-512 has 32
/// vector registers, AVX2 16, SSE/NEON 16 of a quarter the width.
pub trait Lanes: Copy + Send + Sync + 'static {
    /// f32 values per vector.
    const N: usize;
    /// Rows of the forward and input-grad tile (the height of a weight panel).
    const MR: usize;
    /// Output channels, and vectors of input channels, of the weight-gradient tile
    /// (`dy^T` rows are padded to `WR`).
    const WR: usize;
    const WV: usize;
    /// Whether the weight gradient runs its tiles over L1-sized chunks of output rows
    /// (see `weight_grad::rows_per_chunk`) rather than each over the whole group.
    const DW_ROW_CHUNKS: bool;
    type V: Copy;

    /// The dispatch level whose instructions this type uses.
    const LEVEL: Level;

    /// Runs `f` compiled with this level's target features.
    ///
    /// # Safety
    /// The CPU must support `LEVEL`.
    unsafe fn run<R>(f: impl FnOnce() -> R) -> R;

    fn zero() -> Self::V;
    fn splat(x: f32) -> Self::V;
    /// `a * b + acc` (one fused instruction where the level has FMA).
    fn mul_add(a: Self::V, b: Self::V, acc: Self::V) -> Self::V;
    fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise maximum (ReLU is `max(v, zero())`).
    fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `s[at..at + N]`.
    fn load(s: &[f32], at: usize) -> Self::V;
    /// The `N` floats at `p`, unchecked: for the tiles' inner loops, which check their
    /// bounds once outside them.
    ///
    /// # Safety
    /// `p..p + N` must be readable floats.
    unsafe fn load_ptr(p: *const f32) -> Self::V;
    fn store<S: Slot>(d: &mut [S], at: usize, v: Self::V);
    /// The first `count` (at most `N`) values at `s[at..]`, the other lanes zero.
    fn load_first(s: &[f32], at: usize, count: usize) -> Self::V;
    /// Stores the first `count` (at most `N`) lanes of `v` at `d[at..]`.
    fn store_first<S: Slot>(d: &mut [S], at: usize, count: usize, v: Self::V);

    /// `out[t] = v[index[t]]`.
    #[inline(always)]
    fn pick(v: Self::V, index: &[i32; MAX_LANES]) -> Self::V {
        let mut a = [0.0; MAX_LANES];
        Self::store(&mut a, 0, v);
        let out: [f32; MAX_LANES] = std::array::from_fn(|t| a[index[t] as usize]);
        Self::load(&out, 0)
    }

    /// The even and the odd entries of the `2N` values `a, b`.
    #[inline(always)]
    fn unzip(a: Self::V, b: Self::V) -> [Self::V; 2] {
        let mut ab = [0.0; 2 * MAX_LANES];
        Self::store(&mut ab, 0, a);
        Self::store(&mut ab, Self::N, b);
        let even: [f32; MAX_LANES] = std::array::from_fn(|t| ab[2 * t]);
        let odd: [f32; MAX_LANES] = std::array::from_fn(|t| ab[2 * t + 1]);
        [Self::load(&even, 0), Self::load(&odd, 0)]
    }

    /// The inverse of [`Lanes::unzip`]: `even[0], odd[0], even[1], ...` as two vectors.
    #[inline(always)]
    fn zip(even: Self::V, odd: Self::V) -> [Self::V; 2] {
        let (mut e, mut o) = ([0.0; MAX_LANES], [0.0; MAX_LANES]);
        Self::store(&mut e, 0, even);
        Self::store(&mut o, 0, odd);
        let ab: [f32; 2 * MAX_LANES] =
            std::array::from_fn(|t| if t % 2 == 0 { e[t / 2] } else { o[t / 2] });
        [Self::load(&ab, 0), Self::load(&ab, Self::N)]
    }

    /// Transposes the `N x N` matrix whose rows are `r[..N]`: afterwards lane `i` of
    /// `r[j]` is what lane `j` of `r[i]` was.
    #[inline(always)]
    fn transpose(r: &mut [Self::V; MAX_LANES]) {
        let mut m = [[0.0; MAX_LANES]; MAX_LANES];
        for (row, &v) in m.iter_mut().zip(r.iter()).take(Self::N) {
            Self::store(row, 0, v);
        }
        for (j, v) in r.iter_mut().enumerate().take(Self::N) {
            let column: [f32; MAX_LANES] = std::array::from_fn(|i| m[i][j]);
            *v = Self::load(&column, 0);
        }
    }

    /// `C = A B` with this level's forward tile: see `super::tile::panel_product`.
    fn panel_product(
        a_panels: &[f32],
        dims: (usize, usize, usize),
        b: &[f32],
        b_at: super::tile::Layout,
        c_at: super::tile::Layout,
        put: impl FnMut(usize, Self::V),
    );
    // (`put` must be an `#[inline(always)]` closure: the product is compiled with this
    // level's features, a closure is not, and one LLVM declines to inline calls each of
    // its intrinsics out of line; the stride-2 input grad's zipping `put` ran at half
    // speed so.)

    /// One tile of `dW` with this level's weight tile (see `super::tile::weight_tile`,
    /// `off` holds `WV` offsets): its `WR x WV` vectors, row-major, added into `out`.
    #[allow(clippy::too_many_arguments)]
    fn weight_tile(
        runs: &[(usize, usize)],
        len: usize,
        images: &[f32],
        step: usize,
        off: &[usize],
        dy_t: &[f32],
        ld: usize,
        cb: usize,
        out: &mut [f32],
    );
}

/// `dst.copy_from_slice(src)` a vector at a time, the last one masked. For the short
/// rows of a small image (8 to 32 floats) a call to memcpy costs more than the copy.
/// Whole vectors are plain loads and stores: AVX2's masked store is several micro-ops.
#[inline(always)]
pub fn copy<L: Lanes>(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let whole = dst.len() - dst.len() % L::N;
    for start in (0..whole).step_by(L::N) {
        L::store(dst, start, L::load(src, start));
    }
    if whole < dst.len() {
        let n = dst.len() - whole;
        L::store_first(dst, whole, n, L::load_first(src, whole, n));
    }
}

/// Splits a row into its even and odd entries: `even[j] = row[2j]`, `odd[j] = row[2j + 1]`
/// (`even` holds `ceil(n/2)` values, `odd` `floor(n/2)`), one unzip per `2N` values,
/// unmasked but for the tail (see [`copy`]).
#[inline(always)]
pub fn split2<L: Lanes>(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let n = row.len();
    let whole = n - n % (2 * L::N);
    for start in (0..whole).step_by(2 * L::N) {
        let [e, o] = L::unzip(L::load(row, start), L::load(row, start + L::N));
        L::store(even, start / 2, e);
        L::store(odd, start / 2, o);
    }
    if whole < n {
        let m = n - whole;
        let a = L::load_first(row, whole, m);
        let b = L::load_first(row, whole + m.min(L::N), m.saturating_sub(L::N));
        let [e, o] = L::unzip(a, b);
        L::store_first(even, whole / 2, m.div_ceil(2), e);
        L::store_first(odd, whole / 2, m / 2, o);
    }
}

/// The inverse of [`split2`]: `row[2j] = even[j]`, `row[2j + 1] = odd[j]`.
#[inline(always)]
pub fn merge2<L: Lanes, S: Slot>(even: &[f32], odd: &[f32], row: &mut [S]) {
    let n = row.len();
    let whole = n - n % (2 * L::N);
    for start in (0..whole).step_by(2 * L::N) {
        let [lo, hi] = L::zip(L::load(even, start / 2), L::load(odd, start / 2));
        L::store(row, start, lo);
        L::store(row, start + L::N, hi);
    }
    if whole < n {
        let m = n - whole;
        let e = L::load_first(even, whole / 2, m.div_ceil(2));
        let o = L::load_first(odd, whole / 2, m / 2);
        let [lo, hi] = L::zip(e, o);
        L::store_first(row, whole, m, lo);
        L::store_first(row, whole + m.min(L::N), m.saturating_sub(L::N), hi);
    }
}

/// Splits a row into its `stride` phases: `phases[r*len + j] = row[j*stride + r]`, with
/// `len = ceil(row.len() / stride)` (returned).
#[inline(always)]
pub fn split_phases<L: Lanes>(row: &[f32], stride: usize, phases: &mut [f32]) -> usize {
    let len = row.len().div_ceil(stride);
    if stride == 2 {
        let (even, odd) = phases.split_at_mut(len);
        split2::<L>(row, even, odd);
    } else {
        for r in 0..stride {
            let dst = phases[r * len..].iter_mut();
            for (d, &v) in dst.zip(row.iter().skip(r).step_by(stride)) {
                *d = v;
            }
        }
    }
    len
}

/// The inverse of [`split_phases`]: `row[j*stride + r] = phases[r*len + j]`.
#[inline(always)]
pub fn merge_phases<L: Lanes>(phases: &[f32], len: usize, stride: usize, row: &mut [f32]) {
    if stride == 2 {
        let (even, odd) = phases.split_at(len);
        merge2::<L, f32>(even, odd, row);
    } else {
        for r in 0..stride {
            let dst = row.iter_mut().skip(r).step_by(stride);
            for (d, &v) in dst.zip(&phases[r * len..]) {
                *d = v;
            }
        }
    }
}

/// `dst[j*ld + i] = src[i*row_stride + j]` for `i < rows`, `j < len`: the first `len`
/// values of `rows` rows, transposed an `N x N` block at a time in registers (masked at
/// the edges). Gathering each column's values instead cost a third of a stride-2 weight
/// gradient: every gather touches `N` cache lines.
#[inline(always)]
pub fn transpose_rows<L: Lanes>(
    src: &[f32],
    rows: usize,
    len: usize,
    row_stride: usize,
    dst: &mut [f32],
    ld: usize,
) {
    for i0 in (0..rows).step_by(L::N) {
        let block_rows = (rows - i0).min(L::N);
        for j0 in (0..len).step_by(L::N) {
            let block_len = (len - j0).min(L::N);
            // Whole blocks (all of them on ResNet's shapes) load and store unmasked: at
            // AVX2 the masked ones made this a sixth of a weight gradient.
            let mut block = [L::zero(); MAX_LANES];
            for (i, v) in block.iter_mut().enumerate().take(block_rows) {
                let at = (i0 + i) * row_stride + j0;
                *v = if block_len == L::N {
                    L::load(src, at)
                } else {
                    L::load_first(src, at, block_len)
                };
            }
            L::transpose(&mut block);
            for (j, &column) in block.iter().take(block_len).enumerate() {
                let at = (j0 + j) * ld + i0;
                if block_rows == L::N {
                    L::store(dst, at, column);
                } else {
                    L::store_first(dst, at, block_rows, column);
                }
            }
        }
    }
}
