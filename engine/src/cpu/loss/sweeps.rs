//! Sweeps 1 and 2 of a row, shared by the row kernels: the logits `u_j` and their
//! maximum, then the exponentials in place and their sum (see the module docs of
//! `loss/mod.rs` for the three sweeps), with the prefetch of the next row that overlaps
//! them with memory; and the two as one pass where a clamp bounds `u` ([`sweep_shifted`]).
use super::assume_init;
use crate::cpu::simd::{self, MulAdd, SimdFloat};
use std::mem::MaybeUninit;

/// `u = scale * clamp(z) + o`, and the clamp's gradient mask.
#[derive(Clone, Copy)]
pub(super) struct Logits<T> {
    pub(super) scale: T,
    pub(super) lo: T,
    pub(super) hi: T,
}

impl<T: SimdFloat> Logits<T> {
    /// In a loop over one row: the clamp as selects, which compile to one `max` and one
    /// `min` each (a NaN `z` stays NaN), and the scale and offset as one multiply-add.
    #[inline(always)]
    pub(super) fn of<M: MulAdd>(self, z: T, o: T) -> T {
        self.scale.mul_add_at::<M>(z.max(self.lo).min(self.hi), o)
    }

    /// [`Logits::of`] for lane arrays (`tile.rs`): LLVM's straight-line vectoriser handles
    /// the `maxnum`/`minnum` intrinsics but left the selects scalar. They clamp a NaN `z`
    /// to a bound; the kernels add `z * 0` to keep it NaN.
    #[inline(always)]
    pub(super) fn of_lanes(self, z: T, o: T) -> T {
        self.scale * z.maxnum(self.lo).minnum(self.hi) + o
    }

    /// [`Logits::of`] and whether the clamp lets the gradient through: `clamp(z) == z`, one
    /// compare on the value the clamp computed anyway (false for NaN, as in
    /// [`Logits::passes`]).
    #[inline(always)]
    pub(super) fn of_passing<M: MulAdd>(self, z: T, o: T) -> (T, bool) {
        let c = z.max(self.lo).min(self.hi);
        (self.scale.mul_add_at::<M>(c, o), c == z)
    }

    /// Whether the clamp lets a gradient through `z` (PyTorch's clamp backward). The clamp
    /// is symmetric (`lo = -hi`), so this is one `and` (the absolute value) and one compare
    /// where two compares and their `and` were.
    #[inline(always)]
    pub(super) fn passes(self, z: T) -> bool {
        z.abs() <= self.hi
    }
}

/// Lanes of sweep 2's sum: independent partial sums, so that the reduction's dependency
/// chain does not limit the sweep (one 8-lane accumulator cost a third of the kernel's
/// time at C = 8142). 32 (four AVX2 registers of f32, eight SSE ones) by default, but one
/// AVX-512 register: at 512 x 8142 two of them took 8-17% longer than one, while at AVX2
/// two registers took 10% longer than four.
const fn row_lanes(vector_f32: usize) -> usize {
    if vector_f32 == 16 {
        16
    } else {
        32
    }
}

/// Sweep 1: writes `u_j` to every entry of `g` and returns `max_j u_j` (`offsets`: the
/// row's or the block's). `z * 0` (0 for a finite `z`, NaN otherwise) is added, as one
/// multiply-add (`u + z * 0` is exactly `u`), so that a non-finite logit becomes a NaN `u`
/// even where the clamp would hide it; sweep 2 turns that into a NaN sum.
#[inline(always)]
pub(super) fn sweep_logits<'g, T: SimdFloat, M: MulAdd>(
    z: &[T],
    g: &'g mut [MaybeUninit<T>],
    offsets: &[T],
    u: Logits<T>,
) -> (&'g mut [T], T) {
    for ((gv, &zv), &o) in g.iter_mut().zip(z).zip(offsets) {
        gv.write(zv.mul_add_at::<M>(T::ZERO, u.of::<M>(zv, o)));
    }
    // SAFETY: the loop above wrote every entry of `g` (all three have the row's length).
    let g = unsafe { assume_init(g) };
    // A pass of its own: LLVM keeps a running maximum in registers only in a loop this
    // simple (fused into the loop above, in lane arrays or not, it went to the stack: one
    // masked store per vector, and the sweep took twice as long).
    let m = simd::max(g);
    (g, m)
}

/// The next row's logits and gradient, which sweep 2 asks the CPU to bring into L2 while
/// it computes `exp`s. Without that, a long row's sweep 1 waited on memory (over half the
/// kernel's time at 8142 classes) while sweeps 2 and 3 left the memory bus idle.
#[derive(Clone, Copy)]
pub(super) struct Ahead {
    z: *const u8,
    g: *const u8,
}

impl Ahead {
    pub(super) const NONE: Ahead = Ahead {
        z: std::ptr::null(),
        g: std::ptr::null(),
    };

    /// The row after `z_row`/`g_row` when `more` (it exists in the same buffers).
    pub(super) fn after<T, G>(z_row: &[T], g_row: &[G], more: bool) -> Ahead {
        if !more {
            return Ahead::NONE;
        }
        Ahead {
            z: z_row.as_ptr_range().end.cast(),
            g: g_row.as_ptr_range().end.cast(),
        }
    }

    /// The block after `z_b`/`g_b` when `more`, else `z_b`/`g_b` themselves (already in
    /// cache): never [`Ahead::NONE`], so a loop can call [`Ahead::fetch_lines`] with no
    /// test per iteration.
    pub(super) fn after_or_within<T, G>(z_b: &[T], g_b: &[G], more: bool) -> Ahead {
        if more {
            Ahead::after(z_b, g_b, true)
        } else {
            Ahead {
                z: z_b.as_ptr().cast(),
                g: g_b.as_ptr().cast(),
            }
        }
    }

    /// Prefetches the bytes `[at, at + len)` of the next row's logits and gradient. `len`
    /// is a constant at the call, so the loop unrolls: as a `step_by` iterator it did not,
    /// and its bookkeeping was an eighth of the kernel's time.
    #[inline(always)]
    pub(super) fn fetch(self, at: usize, len: usize) {
        if !self.z.is_null() {
            self.fetch_lines(at, len);
        }
    }

    /// [`Ahead::fetch`] for an `Ahead` that is not [`Ahead::NONE`].
    #[inline(always)]
    pub(super) fn fetch_lines(self, at: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
            const LINE: usize = 64;
            for line in 0..len.div_ceil(LINE) {
                let off = at + line * LINE;
                // SAFETY: a prefetch is a hint, not an access: it never faults and reads
                // nothing into the program; the addresses lie in the same allocations.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T1>(self.z.wrapping_add(off).cast());
                    _mm_prefetch::<_MM_HINT_T1>(self.g.wrapping_add(off).cast());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (at, len);
    }
}

/// Sweep 2: `g_j <- exp(g_j - m)` and their sum, in one loop; returns the sum, or the
/// column of the first non-finite logit when the sum is NaN.
#[inline(always)]
pub(super) fn sweep_exp<T: SimdFloat, M: MulAdd>(
    z: &[T],
    g: &mut [T],
    m: T,
    ahead: Ahead,
) -> std::result::Result<T, usize> {
    // A constant per level: the other arm is not compiled into that level's copy.
    if row_lanes(M::VECTOR_F32) == 16 {
        sweep_exp_in::<T, M, 16>(z, g, m, ahead)
    } else {
        sweep_exp_in::<T, M, 32>(z, g, m, ahead)
    }
}

/// [`sweep_exp`] with `ROW_LANES` partial sums.
#[inline(always)]
fn sweep_exp_in<T: SimdFloat, M: MulAdd, const ROW_LANES: usize>(
    z: &[T],
    g: &mut [T],
    m: T,
    ahead: Ahead,
) -> std::result::Result<T, usize> {
    let n = g.len() / ROW_LANES * ROW_LANES;
    let (body, tail) = g.split_at_mut(n);
    let mut acc = [T::ZERO; ROW_LANES];
    let chunk_bytes = ROW_LANES * std::mem::size_of::<T>();
    for (i, c) in body.chunks_exact_mut(ROW_LANES).enumerate() {
        ahead.fetch(i * chunk_bytes, chunk_bytes);
        for l in 0..ROW_LANES {
            let e = (c[l] - m).exp_below_88_at::<M>();
            c[l] = e;
            acc[l] += e;
        }
    }
    // The tail as a plain map, which LLVM vectorises with its own epilogue.
    for gv in tail.iter_mut() {
        *gv = (*gv - m).exp_below_88_at::<M>();
    }
    let s = simd::sum(tail) + simd::fold_sum(acc);
    if s.to_f64().is_nan() {
        // A NaN can also come from huge finite logits (inf - inf); then there is nothing to
        // name and the row's result is what it is.
        if let Some(c) = z.iter().position(|v| !v.is_finite()) {
            return Err(c);
        }
    }
    Ok(s)
}

/// Sweeps 1 and 2 in one pass, for a row whose `u` a clamp bounds (`super::Shift`):
/// `g_j = exp(u_j - mid)` where the clamp passes the gradient and 0 where it stops it, with
/// `offsets` already `o_j - mid`; returns the sum of every `exp(u_j - mid)` (the stopped
/// ones too: they are in the softmax), or the column of the first non-finite logit. No
/// maximum, so no second read of `u`, and sweep 3 is one multiply per entry.
/// `z * 0` keeps a non-finite logit NaN, as in [`sweep_logits`]. `ahead` must not be
/// [`Ahead::NONE`] ([`Ahead::after_or_within`]).
///
/// One cache line of `z` per iteration (16 f32: one AVX-512 register, two AVX2 ones) and
/// as many partial sums: the `exp` of a vector is long enough (some 20 operations) that
/// the sum's chain of adds does not limit the loop, while more registers of partial sums
/// spilled at AVX2 (16 registers, and the `exp` needs a dozen constants).
#[inline(always)]
pub(super) fn sweep_shifted<T: SimdFloat, M: MulAdd>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    offsets: &[T],
    u: Logits<T>,
    ahead: Ahead,
) -> std::result::Result<T, usize> {
    const LINE: usize = 64;
    const LANES: usize = LINE / 4;
    let entry = |zv: T, o: T| {
        let (uv, passes) = u.of_passing::<M>(zv, o);
        let e = zv.mul_add_at::<M>(T::ZERO, uv).exp_below_88_at::<M>();
        (e, if passes { e } else { T::ZERO })
    };
    // Whole lines as arrays, so that the lane loop has a constant trip count for LLVM.
    let (z_lines, z_tail) = z.as_chunks::<LANES>();
    let (g_lines, g_tail) = g[..z.len()].as_chunks_mut::<LANES>();
    let (o_lines, o_tail) = offsets[..z.len()].as_chunks::<LANES>();
    let mut acc = [T::ZERO; LANES];
    let chunk_bytes = LANES * std::mem::size_of::<T>();
    let lines = z_lines.iter().zip(g_lines.iter_mut()).zip(o_lines);
    for (i, ((zc, gc), oc)) in lines.enumerate() {
        ahead.fetch_lines(i * chunk_bytes, chunk_bytes);
        // The line by value in and out: writing `g` in the lane loop, LLVM could not rule
        // out that it overlaps `z`, checked at run time, line by line, with a scalar
        // fallback loop, which kept `acc` in memory (a store-to-load chain per line).
        let (zl, ol) = (*zc, *oc);
        let mut kept = [T::ZERO; LANES];
        for l in 0..LANES {
            let e;
            (e, kept[l]) = entry(zl[l], ol[l]);
            acc[l] += e;
        }
        *gc = kept.map(MaybeUninit::new);
    }
    let mut tail = T::ZERO;
    for ((gv, &zv), &o) in g_tail.iter_mut().zip(z_tail).zip(o_tail) {
        let (e, kept) = entry(zv, o);
        gv.write(kept);
        tail += e;
    }
    let s = tail + simd::fold_sum(acc);
    if s.to_f64().is_nan() {
        if let Some(c) = z.iter().position(|v| !v.is_finite()) {
            return Err(c);
        }
    }
    Ok(s)
}
