//! Sweeps 1 and 2 of a row, shared by the row kernels: the logits `u_j` and their
//! maximum, then the exponentials in place and their sum (see the module docs of
//! `loss/mod.rs` for the three sweeps), with the prefetch of the next row that overlaps
//! them with memory; and the two as one pass where a clamp bounds `u` ([`sweep_shifted`]).
use super::assume_init;
use crate::cpu::simd::{self, MulAdd, SimdFloat};
use std::any::TypeId;
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
        if let Some(c) = first_non_finite(z) {
            return Err(c);
        }
    }
    Ok(s)
}

/// The column of the first non-finite entry of `z`, if any: a test per 64 entries that
/// LLVM vectorises (an `or` of compares, with no exit inside), and the search for the
/// column only in the 64 that failed it. [`sweep_shifted`] scans every block in which
/// a finite logit lay beyond the clamp; a plain `position` is a compare and a branch per
/// entry, and at 512 x 1000 with one such logit per 997 it was most of the AVX2 kernel's
/// time (`perf`: its unrolled scalar loop over 40% of the samples).
#[inline(always)]
pub(super) fn first_non_finite<T: SimdFloat>(z: &[T]) -> Option<usize> {
    const CHUNK: usize = 64;
    for (i, c) in z.chunks(CHUNK).enumerate() {
        if c.iter().fold(false, |any, v| any | !v.is_finite()) {
            return c.iter().position(|v| !v.is_finite()).map(|p| i * CHUNK + p);
        }
    }
    None
}

/// Sweeps 1 and 2 in one pass, for a row whose `u` a clamp bounds (`super::Shift`):
/// `g_j = exp(u_j - mid)` where the clamp passes the gradient and 0 where it stops it, with
/// `offsets` already `o_j - mid`; returns the sum of every `exp(u_j - mid)` (the stopped
/// ones too: they are in the softmax), or the column of the first non-finite logit. No
/// maximum, so no second read of `u`, and sweep 3 is one multiply per entry. `drops`:
/// whether some offset is `-inf` (a dropped class, whose `exp` must be 0). `ahead` must not
/// be [`Ahead::NONE`] ([`Ahead::after_or_within`]).
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
    drops: bool,
) -> std::result::Result<T, usize> {
    // Two copies of the loop; the test is once per block.
    let s = if drops || M::VECTOR_F32 == 16 {
        shifted_pass::<T, M, true>(z, g, offsets, u, ahead)
    } else {
        shifted_pass::<T, M, false>(z, g, offsets, u, ahead)
    };
    // A non-finite logit fails the clamp's test (`clamp(z) == z`), so any lane that
    // stopped a gradient (rare: a logit beyond the clamp) sends the block through a scan;
    // or, with `NAN_SUM`, the sum is NaN.
    if s.1 {
        if let Some(c) = first_non_finite(z) {
            return Err(c);
        }
    }
    Ok(s.0)
}

/// [`sweep_shifted`]'s loop: the sum, and whether to look for a non-finite logit.
///
/// Every `u - mid` of a kept class lies within `+-64` (`super::MAX_SPAN`), so the `exp`
/// needs no clamp and applies `2^n` with an integer add ([`SimdFloat::exp_bounded_at`]).
/// That `exp` of a non-finite logit is garbage rather than NaN, so instead of keeping it
/// NaN through the sum (a multiply-add `+ z * 0` per entry, as in [`sweep_logits`]), each
/// lane records whether the gradient was stopped, as the bits that `kept` and `e` differ
/// by (the `xor` and `or` run beside the float ports), and [`sweep_shifted`] scans the
/// block when any was. A non-finite `z` always fails the clamp's test, and its `e` is
/// never +0 (at least `e^-64` for a finite `u`, and a NaN's nonzero mantissa bits kept
/// otherwise). At AVX2 this took the float work from 18 operations per vector to 16.
///
/// `NAN_SUM`: the arithmetic from before, `+ z * 0` and `exp_below_88_at` (the same bits
/// for every kept class), a non-finite logit found as a NaN sum. A dropped class's `-inf`
/// needs that `exp`'s clamp at the bottom (and `+ z * 0` to keep an infinite logit there
/// from hiding); at AVX-512 the flag's `xor` and `or` compete with the float work for the
/// same two ports, and the bounded loop measured 1.48-1.56 ms against 1.27-1.35 before.
#[inline(always)]
fn shifted_pass<T: SimdFloat, M: MulAdd, const NAN_SUM: bool>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    offsets: &[T],
    u: Logits<T>,
    ahead: Ahead,
) -> (T, bool) {
    const LINE: usize = 64;
    const LANES: usize = LINE / 4;
    let entry = |zv: T, o: T| {
        let (uv, passes) = u.of_passing::<M>(zv, o);
        let e = if NAN_SUM {
            zv.mul_add_at::<M>(T::ZERO, uv).exp_below_88_at::<M>()
        } else {
            uv.exp_bounded_at::<M>()
        };
        (e, if passes { e } else { T::ZERO })
    };
    // Whole lines as arrays, so that the lane loop has a constant trip count for LLVM.
    let (z_lines, z_tail) = z.as_chunks::<LANES>();
    let n = z_lines.len() * LANES;
    let (g_body, g_tail) = g[..z.len()].split_at_mut(n);
    let (o_body, o_tail) = offsets[..z.len()].split_at(n);
    let (acc, mut any) = match by_hand::<T, M, NAN_SUM>(&z[..n], g_body, o_body, u, ahead) {
        Some(done) => done,
        None => {
            let (g_lines, o_lines) = (
                g_body.as_chunks_mut::<LANES>().0,
                o_body.as_chunks::<LANES>().0,
            );
            let mut acc = [T::ZERO; LANES];
            let mut stopped = [T::Bits::default(); LANES];
            let chunk_bytes = LANES * std::mem::size_of::<T>();
            let lines = z_lines.iter().zip(g_lines.iter_mut()).zip(o_lines);
            for (i, ((zc, gc), oc)) in lines.enumerate() {
                ahead.fetch_lines(i * chunk_bytes, chunk_bytes);
                // The line by value in and out: writing `g` in the lane loop, LLVM could
                // not rule out that it overlaps `z`, checked at run time, line by line,
                // with a scalar fallback loop, which kept `acc` in memory (a
                // store-to-load chain per line).
                let (zl, ol) = (*zc, *oc);
                let mut kept = [T::ZERO; LANES];
                for l in 0..LANES {
                    let e;
                    (e, kept[l]) = entry(zl[l], ol[l]);
                    acc[l] += e;
                    if !NAN_SUM {
                        stopped[l] = stopped[l] | (e.lane_bits() ^ kept[l].lane_bits());
                    }
                }
                *gc = kept.map(MaybeUninit::new);
            }
            (acc, stopped.iter().any(|&b| b != T::Bits::default()))
        }
    };
    let mut tail = T::ZERO;
    for ((gv, &zv), &o) in g_tail.iter_mut().zip(z_tail).zip(o_tail) {
        let (e, kept) = entry(zv, o);
        gv.write(kept);
        tail += e;
        any |= !NAN_SUM && e.lane_bits() != kept.lane_bits();
    }
    let s = tail + simd::fold_sum(acc);
    (s, any || (NAN_SUM && s.to_f64().is_nan()))
}

/// [`shifted_pass`]'s whole lines by the level's own loop where it has one: AVX2 f32
/// without `NAN_SUM` (`shifted_avx2.rs`, the same bits); else `None`.
#[inline(always)]
fn by_hand<T: SimdFloat, M: MulAdd, const NAN_SUM: bool>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    offsets: &[T],
    u: Logits<T>,
    ahead: Ahead,
) -> Option<([T; 16], bool)> {
    #[cfg(target_arch = "x86_64")]
    if !NAN_SUM && M::VECTOR_F32 == 8 && TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`, so the casts change no type; `M` with 8 lanes is `Fused`,
        // which only `simd::with_level_fma` uses, under `call_avx2`.
        let (sums, any) = unsafe {
            let z32 = &*(z as *const [T] as *const [f32]);
            let o32 = &*(offsets as *const [T] as *const [f32]);
            let g32 = &mut *(g as *mut [MaybeUninit<T>] as *mut [MaybeUninit<f32>]);
            let u32 = Logits {
                scale: u.scale.to_f64() as f32,
                lo: u.lo.to_f64() as f32,
                hi: u.hi.to_f64() as f32,
            };
            super::shifted_avx2::lines(z32, g32, o32, u32, ahead)
        };
        return Some((sums.map(|s| T::from_f64(s as f64)), any));
    }
    let _ = (z, g, offsets, u, ahead);
    None
}
