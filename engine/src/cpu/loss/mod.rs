//! The fused loss row kernel: ARB-Loss and its baselines (the maths is in `ops/loss`).
//!
//! Each row is handled by one task with three sweeps over its gradient row, which stays in
//! L1/L2 between them:
//! 1. `g_j = u_j = scale * clamp(z_j) + offset_j`, then `m = max_j u_j`;
//! 2. `g_j = exp(g_j - m)` in place, and `S = sum_j g_j` (NaN flags a non-finite logit);
//! 3. `g_j = mask_j (a g_j - b)` (hard targets) or `mask_j (a g_j - b w_j t_j)` (dense
//!    targets), with per-row scalars `a, b`; at most two target entries are then fixed up.
//!
//! So main memory sees the logits read once and the gradient written once. The per-row
//! scalars (log-sum-exp, the loss, focal factors) are computed in f64 from the lane sums.
//! Every loop is a plain map (vectorised by LLVM) or a reduction into lane arrays.
//!
//! `hard.rs` holds the hard-target row (its target classes, focal and margin terms and
//! sweep 3); dense-target rows are below. Short rows of the plain hard-target losses (up to `tile::MAX_COLS` classes) go to
//! `tile.rs` instead, which puts 16 rows across the SIMD lanes: there the per-row fixed
//! costs above, not the entries, were the kernel's time.
mod hard;
mod plain;
#[cfg(target_arch = "x86_64")]
mod shifted_avx2;
mod sweeps;
#[cfg(test)]
mod tests;
mod tile;

use super::elementwise::PAR_MIN;
use super::simd::{self, with_simd_fma, MulAdd, MulAddKernel, SimdFloat, LANES};
use crate::backend::FusedLossParams;
use crate::error::{invalid, Result};
use crate::Float;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use sweeps::{sweep_exp, sweep_logits, Ahead, Logits};

/// Hard targets have one component per row; mixup has two.
pub const MAX_COMPONENTS: usize = FusedLossParams::MAX_COMPONENTS;

/// The per-call constants every row reads, converted to `T` once.
struct Consts<'a, T> {
    cols: usize,
    /// `offset_j` (`-inf` drops class `j`).
    offsets: Vec<T>,
    /// Dense-target class weights (ones when none were given).
    weights: Vec<T>,
    margins: &'a [f64],
    offsets_f64: &'a [f64],
    scale: T,
    lo: T,
    hi: T,
    /// `plain.rs` only: the shift that a clamp makes safe for every row (see [`Shift`]).
    shift: Option<Shift<T>>,
    p: &'a FusedLossParams<'a>,
}

/// Widest range of `u` for which [`Shift`] applies: `|u - mid| <= 64`, so every
/// `exp(u - mid)` lies in `[e^-64, e^64]`, normal f32 numbers with their full precision
/// (as `exp(u - max u)` has), and a row's sum stays below `C e^64`, finite for any `C`
/// below 10^10.
const MAX_SPAN: f64 = 128.0;

/// With a clamp every `u_j = scale * clamp(z_j) + o_j` of every row lies in a range known
/// before any row is read, `mid +- (|scale| bound + (max o - min o) / 2)`. Within
/// [`MAX_SPAN`], `exp(u - mid)` cannot overflow or lose precision, so a row's shift can be
/// `mid` instead of its maximum: sweeps 1 and 2 become one pass, with no maximum to find
/// first (`plain.rs`). Dropped classes (`-inf` offsets) still give 0.
struct Shift<T> {
    mid: f64,
    /// `o_j - mid` (`-inf` for a dropped class).
    offsets: Vec<T>,
    /// Whether any class is dropped: only then does the `exp` need its clamp at the bottom.
    drops: bool,
}

impl<T: Float> Shift<T> {
    fn new(p: &FusedLossParams) -> Option<Self> {
        let bound = p.clamp?;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &o in p.offsets.iter().filter(|&&o| o != f64::NEG_INFINITY) {
            if !o.is_finite() {
                return None; // NaN or `+inf`: no range to speak of
            }
            lo = lo.min(o);
            hi = hi.max(o);
        }
        if p.offsets.is_empty() {
            (lo, hi) = (0.0, 0.0);
        }
        let span = 2.0 * (p.scale * bound).abs() + (hi - lo);
        // `lo > hi`: every class dropped (no finite offset). `span` is finite here.
        if lo > hi || span > MAX_SPAN {
            return None;
        }
        let mid = (lo + hi) / 2.0;
        let drops = p.offsets.contains(&f64::NEG_INFINITY);
        let offsets = if p.offsets.is_empty() {
            vec![T::from_f64(-mid); p.cols]
        } else {
            p.offsets.iter().map(|&o| T::from_f64(o - mid)).collect()
        };
        Some(Shift {
            mid,
            offsets,
            drops,
        })
    }
}

impl<'a, T: SimdFloat> Consts<'a, T> {
    /// The constants for `kernel` (only `plain.rs` reads a [`Shift`]).
    fn new(p: &'a FusedLossParams<'a>, kernel: Kernel) -> Self {
        let offsets: Vec<T> = if p.offsets.is_empty() {
            vec![T::ZERO; p.cols]
        } else {
            p.offsets.iter().map(|&o| T::from_f64(o)).collect()
        };
        let weights = if p.weights.is_empty() {
            vec![T::ONE; p.cols]
        } else {
            p.weights.iter().map(|&w| T::from_f64(w)).collect()
        };
        let bound = p.clamp.unwrap_or(f64::INFINITY);
        Consts {
            cols: p.cols,
            offsets,
            weights,
            margins: p.margins,
            offsets_f64: p.offsets,
            scale: T::from_f64(p.scale),
            lo: T::from_f64(-bound),
            hi: T::from_f64(bound),
            shift: match kernel {
                Kernel::Plain => Shift::new(p),
                Kernel::Tiles | Kernel::Rows => None,
            },
            p,
        }
    }

    /// The scale and clamp as a copyable value, so loops keep them in registers.
    #[inline(always)]
    fn logits(&self) -> Logits<T> {
        Logits {
            scale: self.scale,
            lo: self.lo,
            hi: self.hi,
        }
    }

    /// Whether a clamp is set: without one every gradient passes, and sweep 3 needs no mask.
    fn clamps(&self) -> bool {
        self.p.clamp.is_some()
    }

    /// `u_c` in f64, for the target entries.
    fn logit_f64(&self, z: T, c: usize) -> f64 {
        let bound = self.p.clamp.unwrap_or(f64::INFINITY);
        let o = self.offsets_f64.get(c).copied().unwrap_or(0.0);
        self.p.scale * z.to_f64().clamp(-bound, bound) + o
    }
}

/// `sum_j w_j t_j u_j` over the classes with `t_j > 0` (elsewhere `u_j` may be `-inf`).
#[inline(always)]
fn target_dot<T: Float>(w: &[T], t: &[T], u: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    for ((wc, tc), uc) in w.chunks(LANES).zip(t.chunks(LANES)).zip(u.chunks(LANES)) {
        for l in 0..wc.len() {
            let v = wc[l] * tc[l] * uc[l];
            acc[l] += if tc[l] > T::ZERO { v } else { T::ZERO };
        }
    }
    acc.into_iter().sum()
}

/// Views a fully written row as initialised.
///
/// # Safety
/// Every element of `g` must have been written.
#[inline(always)]
unsafe fn assume_init<T>(g: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: MaybeUninit<T> has T's layout, and the caller vouches for initialisation.
    unsafe { &mut *(g as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `ln s` of a row's sum (`s >= 1`) at `T`'s precision: f32 rows use the polynomial
/// `ln_f32` (libm's f64 `ln` was 14% of the kernel at 32 classes), f64 rows libm's `ln`.
#[inline(always)]
fn ln<T: Float>(s: f64) -> f64 {
    T::from_f64(s).fast_ln().to_f64()
}

/// A dense-target row: `l = W lse(u) - sum_j w_j t_j u_j`,
/// `dl/du_j = W p_j - w_j t_j` with `W = sum_j w_j t_j`.
#[inline(always)]
fn dense_row<T: SimdFloat, M: MulAdd>(
    z: &[T],
    t: &[T],
    g: &mut [MaybeUninit<T>],
    k: &Consts<T>,
) -> std::result::Result<f64, usize> {
    let (g, m) = sweep_logits::<T, M>(z, g, &k.offsets, k.logits());
    let (w, d) = (simd::dot(&k.weights, t), target_dot(&k.weights, t, g));
    let s = sweep_exp::<T, M>(z, g, m, Ahead::NONE)?;
    let (s, w) = (s.to_f64(), w.to_f64());
    let lse = m.to_f64() + ln::<T>(s);
    let gs = k.p.scale * k.p.grad_scale;
    let (at, bt) = (T::from_f64(gs * w / s), T::from_f64(gs));
    let u = k.logits();
    for (((gv, &zv), &tv), &wv) in g.iter_mut().zip(z).zip(t).zip(&k.weights) {
        let v = *gv * at - bt * wv * tv;
        *gv = if u.passes(zv) { v } else { T::ZERO };
    }
    Ok(w * lse - d.to_f64())
}

/// The row kernel for any loss: dense-target rows, or hard-target rows (`hard.rs`).
/// Inlined into `with_simd_fma`'s per-level copies through [`Task::run`]: out of line it
/// would be compiled for the baseline CPU (scalar, with a libm call per `exp`).
#[inline(always)]
fn run_rows<T: SimdFloat, M: MulAdd>(
    z: &[T],
    dense: Option<&[T]>,
    k: &Consts<T>,
    r0: usize,
    g: &mut [MaybeUninit<T>],
    l: &mut [T],
) -> Option<(usize, usize)> {
    let (cols, per_row) = (k.cols, k.p.per_row);
    for (j, (g_row, l_row)) in g.chunks_mut(cols).zip(l.iter_mut()).enumerate() {
        let r = r0 + j;
        let z_row = &z[r * cols..(r + 1) * cols];
        let res = match dense {
            Some(t) => dense_row::<T, M>(z_row, &t[r * cols..(r + 1) * cols], g_row, k),
            None => {
                let span = r * per_row..(r + 1) * per_row;
                let (labels, coefs) = (&k.p.labels[span.clone()], &k.p.coefs[span]);
                hard::hard_row::<T, M>(z_row, g_row, labels, coefs, k)
            }
        };
        match res {
            Ok(v) => *l_row = T::from_f64(v),
            Err(c) => return Some((r, c)),
        }
    }
    None
}

/// Which kernel a call's rows go to.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// `tile.rs`: short rows of the plain hard-target losses, rows across the lanes.
    Tiles,
    /// `plain.rs`: longer rows of the plain hard-target losses, in groups.
    Plain,
    /// [`run_rows`]: every loss.
    Rows,
}

/// One task's rows `r0..` into the gradient block `g` and losses `l`, by `kernel`.
struct Task<'a, T> {
    kernel: Kernel,
    z: &'a [T],
    dense: Option<&'a [T]>,
    k: &'a Consts<'a, T>,
    r0: usize,
    g: &'a mut [MaybeUninit<T>],
    l: &'a mut [T],
}

impl<T: SimdFloat> MulAddKernel for Task<'_, T> {
    /// The first (row, column) holding a non-finite logit, if any.
    type Output = Option<(usize, usize)>;

    /// Inlined into `with_simd_fma`'s per-level copies, as is everything below it: out of
    /// line it would be compiled for the baseline CPU (scalar, with libm calls per `exp`).
    #[inline(always)]
    fn run<M: MulAdd>(self) -> Self::Output {
        let Task {
            kernel,
            z,
            dense,
            k,
            r0,
            g,
            l,
        } = self;
        match kernel {
            Kernel::Tiles => tile::run_tiles::<T, M>(z, k, r0, g, l),
            Kernel::Plain => plain::run_plain_rows::<T, M>(z, k, r0, g, l),
            Kernel::Rows => run_rows::<T, M>(z, dense, k, r0, g, l),
        }
    }
}

/// Runs the kernel: each row's loss (`[rows]`) and `grad_scale * dl_i/dz_i` (`[rows, cols]`).
pub fn fused_loss<T: SimdFloat>(
    z: &[T],
    dense: Option<&[T]>,
    p: &FusedLossParams,
) -> Result<(Vec<T>, Vec<T>)> {
    p.validate(z.len(), dense.map(|d| d.len()))?;
    let (rows, cols) = (p.rows, p.cols);
    let mut loss = vec![T::ZERO; rows];
    // Left uninitialised: sweep 1 writes every entry, so zeroing would only add a pass.
    let mut grad: Vec<T> = Vec::with_capacity(rows * cols);
    if cols == 0 {
        return Ok((loss, grad));
    }
    let kernel = if tile::applies(p, dense.is_some()) {
        Kernel::Tiles
    } else if dense.is_none() && p.is_plain_hard() {
        Kernel::Plain
    } else {
        Kernel::Rows
    };
    let consts = Consts::new(p, kernel);
    // Each rayon task runs its rows under `with_simd_fma` (the level is a property of the
    // compiled code, not of the thread); `Task::run` and everything below it are inlined.
    let task = |r0: usize, g: &mut [MaybeUninit<T>], l: &mut [T]| {
        let k = &consts;
        with_simd_fma(Task {
            kernel,
            z,
            dense,
            k,
            r0,
            g,
            l,
        })
    };
    let spare = &mut grad.spare_capacity_mut()[..rows * cols];
    let problem = if rows * cols >= PAR_MIN && rows > 1 {
        // Whole tiles or groups per task, so none is split between two tasks.
        let rows_per_task = (PAR_MIN / 2 / cols).max(1);
        let rows_per_task = match kernel {
            Kernel::Tiles => rows_per_task.next_multiple_of(tile::TILE),
            Kernel::Plain => rows_per_task.next_multiple_of(plain::GROUP),
            Kernel::Rows => rows_per_task,
        };
        spare
            .par_chunks_mut(rows_per_task * cols)
            .zip(loss.par_chunks_mut(rows_per_task))
            .enumerate()
            .filter_map(|(i, (g, l))| task(i * rows_per_task, g, l))
            .min()
    } else {
        task(0, spare, &mut loss)
    };
    if let Some((r, c)) = problem {
        let v = z[r * cols + c].to_f64();
        return invalid(
            "fused_loss",
            format!("logit [{r}, {c}] is {v}: logits must be finite (the clamp would hide it)"),
        );
    }
    // SAFETY: no row reported a problem, so every row ran sweep 1, which wrote all of its
    // `cols` entries; together they are the first `rows * cols` elements.
    unsafe { grad.set_len(rows * cols) };
    Ok((loss, grad))
}
