//! The shifted one-pass sweep's loop (`sweeps::shifted_pass`) written out for AVX2 f32,
//! the same arithmetic in the same order, so the same bits.
//!
//! Why by hand: the lane-array loop needs some 15 loop constants (the clamp, the scale and
//! the `exp`'s reduction and polynomial) where AVX2 has 16 registers, so LLVM kept a few
//! and rebuilt the others in the loop, one `vbroadcastss` from the constant pool per use
//! (AVX2 has no broadcast memory operand), and spilled and reloaded the partial sums and
//! clamp bounds: about 70 instructions per 16 entries, where the arithmetic is about 40.
//! Here the constants are values LLVM cannot see through (`black_box`), so those it
//! cannot keep in registers stay in memory and are read as the multiply-adds' memory
//! operands, at no instruction of their own.
use super::sweeps::{Ahead, Logits};
use std::arch::x86_64::*;
use std::hint::black_box;
use std::mem::MaybeUninit;

// The `exp`'s constants: `simd::exp`'s own (`exp_f32_bounded` and `reduce_and_fit`).
use crate::cpu::simd::exp_coefficients::{
    BOUNDED_ROUND_BIAS as ROUND_BIAS, LN2_HI, LN2_LO, LOG2E, Q,
};

/// Entries per line (64 bytes of f32): two AVX2 vectors, one prefetch of each stream.
pub(super) const LINE: usize = 16;

/// The loop's constants, splatted.
#[derive(Clone, Copy)]
struct Consts {
    lo: __m256,
    hi: __m256,
    scale: __m256,
    log2e: __m256,
    bias: __m256,
    ln2_hi: __m256,
    ln2_lo: __m256,
    q: [__m256; 5],
    one: __m256,
}

/// One vector of entries: `(e, kept, stopped)`, `stopped` all ones where the clamp stops
/// the gradient (or `z` is not finite).
///
/// # Safety
/// As [`lines`].
#[inline(always)]
unsafe fn entry(k: &Consts, z: __m256, o: __m256) -> (__m256, __m256, __m256) {
    // SAFETY: the caller vouches for AVX2 and FMA.
    unsafe {
        // The bounds second, where a memory operand goes: a NaN `z` then clamps to `lo`
        // (where `Logits::of_passing` keeps it NaN), which only `stopped` reads, and it
        // is set either way (`NEQ_UQ` is `!(c == z)`, and a NaN equals nothing).
        let c = _mm256_min_ps(_mm256_max_ps(z, k.lo), k.hi);
        let stopped = _mm256_cmp_ps::<_CMP_NEQ_UQ>(c, z);
        let x = _mm256_fmadd_ps(k.scale, c, o);
        let biased = _mm256_fmadd_ps(x, k.log2e, k.bias);
        let n = _mm256_sub_ps(biased, k.bias);
        let r = _mm256_fmadd_ps(n, k.ln2_lo, _mm256_fmadd_ps(n, k.ln2_hi, x));
        let mut p = _mm256_fmadd_ps(k.q[4], r, k.q[3]);
        p = _mm256_fmadd_ps(p, r, k.q[2]);
        p = _mm256_fmadd_ps(p, r, k.q[1]);
        p = _mm256_fmadd_ps(p, r, k.q[0]);
        p = _mm256_fmadd_ps(p, r, k.one);
        p = _mm256_fmadd_ps(p, r, k.one);
        let two_n = _mm256_slli_epi32::<23>(_mm256_castps_si256(biased));
        let e = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), two_n));
        (e, _mm256_andnot_ps(stopped, e), stopped)
    }
}

/// Every line of `z` (its length rounded down to [`LINE`]s): `g = exp(u - mid)` where the
/// clamp passes and +0 where it stops the gradient; returns the 16 partial sums, lane `l`
/// summing entry `l` of every line (`shifted_pass`'s `acc`), and whether any entry was
/// stopped. `offsets` are `o_j - mid`, none `-inf`.
///
/// A function of its own compiled with AVX2 and FMA (one call per row's whole lines),
/// not one inlined into the caller's: inlined, whether its intrinsics became instructions
/// or calls depended on every caller being compiled with the features, and in some
/// monomorphisations they were calls (`engine/tests/intrinsics_inlined.rs` found them).
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn lines(
    z: &[f32],
    g: &mut [MaybeUninit<f32>],
    offsets: &[f32],
    u: Logits<f32>,
    ahead: Ahead,
) -> ([f32; LINE], bool) {
    let n = z.len() / LINE;
    assert!(g.len() >= n * LINE && offsets.len() >= n * LINE);
    // SAFETY: the caller vouches for AVX2 and FMA; every access below lies within the
    // first `n * LINE` entries of the three slices (checked above).
    unsafe {
        let k = Consts {
            lo: _mm256_set1_ps(u.lo),
            hi: _mm256_set1_ps(u.hi),
            scale: _mm256_set1_ps(u.scale),
            log2e: _mm256_set1_ps(LOG2E),
            bias: _mm256_set1_ps(ROUND_BIAS),
            ln2_hi: _mm256_set1_ps(-LN2_HI),
            ln2_lo: _mm256_set1_ps(-LN2_LO),
            q: [
                _mm256_set1_ps(Q[0]),
                _mm256_set1_ps(Q[1]),
                _mm256_set1_ps(Q[2]),
                _mm256_set1_ps(Q[3]),
                _mm256_set1_ps(Q[4]),
            ],
            one: _mm256_set1_ps(1.0),
        };
        let ptrs = (z.as_ptr(), offsets.as_ptr(), g.as_mut_ptr().cast::<f32>());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut any = _mm256_setzero_ps();
        // Two lines per step where there are two: the constants' loads and the loop's own
        // instructions once per 32 entries (at 512 x 1000 on a Zen 4 that took the AVX2
        // loss from 213 to 185 µs, medians of 11 pairs). The sums add in the same order.
        let pairs = n / 2;
        for i in 0..pairs {
            steps::<2>(&k, ptrs, 2 * i * LINE, ahead, &mut acc, &mut any);
        }
        if n % 2 == 1 {
            steps::<1>(&k, ptrs, 2 * pairs * LINE, ahead, &mut acc, &mut any);
        }
        let mut sums = [0.0f32; LINE];
        _mm256_storeu_ps(sums.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(sums.as_mut_ptr().add(8), acc[1]);
        (sums, _mm256_movemask_ps(any) != 0)
    }
}

/// `LINES` whole lines from entry `at` of `(z, offsets, g)`: each line's `g` stored, its
/// two vectors of `e` added into `acc` (vector `v` into `acc[v % 2]`, line by line, so
/// `acc[l]` sums entry `l` of every line in order) and the stopped lanes or-ed into `any`.
///
/// # Safety
/// As [`lines`]; the `LINES` lines from `at` lie within all three slices.
#[inline(always)]
unsafe fn steps<const LINES: usize>(
    k: &Consts,
    (zp, op, gp): (*const f32, *const f32, *mut f32),
    at: usize,
    ahead: Ahead,
    acc: &mut [__m256; 2],
    any: &mut __m256,
) {
    // SAFETY: the caller vouches for AVX2, FMA and the bounds.
    unsafe {
        ahead.fetch_lines(at * 4, LINES * LINE * 4);
        // The constants through a pointer LLVM cannot follow, once per step: it cannot
        // keep them in registers across the stores (which might change them), so each use
        // reads memory, as an FMA's memory operand, where hoisted they took 13 register
        // loads and three spilled partial sums per 16 entries.
        let kp: *const Consts = black_box(k);
        for v in 0..2 * LINES {
            let at = at + 8 * v;
            let (zv, ov) = (_mm256_loadu_ps(zp.add(at)), _mm256_loadu_ps(op.add(at)));
            let (e, kept, stopped) = entry(&*kp, zv, ov);
            _mm256_storeu_ps(gp.add(at), kept);
            // `e + acc`, as `acc[l] += e` (IEEE addition commutes bit for bit).
            acc[v % 2] = _mm256_add_ps(acc[v % 2], e);
            *any = _mm256_or_ps(*any, stopped);
        }
    }
}
