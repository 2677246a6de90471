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
        let (zp, op, gp) = (z.as_ptr(), offsets.as_ptr(), g.as_mut_ptr().cast::<f32>());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut any = _mm256_setzero_ps();
        // Two lines per iteration where there are two: the constants' loads and the loop's
        // own instructions once per 32 entries. The sums add in the same order.
        let mut i = 0;
        while i + 1 < n {
            let at = i * LINE;
            ahead.fetch_lines(at * 4, 2 * LINE * 4);
            let kp: *const Consts = black_box(&k);
            let mut e = [_mm256_setzero_ps(); 4];
            let mut s = [_mm256_setzero_ps(); 4];
            for v in 0..4 {
                let (zv, ov) = (
                    _mm256_loadu_ps(zp.add(at + 8 * v)),
                    _mm256_loadu_ps(op.add(at + 8 * v)),
                );
                let kept;
                (e[v], kept, s[v]) = entry(&*kp, zv, ov);
                _mm256_storeu_ps(gp.add(at + 8 * v), kept);
            }
            acc0 = _mm256_add_ps(_mm256_add_ps(acc0, e[0]), e[2]);
            acc1 = _mm256_add_ps(_mm256_add_ps(acc1, e[1]), e[3]);
            any = _mm256_or_ps(
                any,
                _mm256_or_ps(_mm256_or_ps(s[0], s[1]), _mm256_or_ps(s[2], s[3])),
            );
            i += 2;
        }
        for i in i..n {
            let at = i * LINE;
            ahead.fetch_lines(at * 4, LINE * 4);
            // The constants through a pointer LLVM cannot follow, once per iteration: it
            // cannot keep them in registers across the stores (which might change them),
            // so each use reads memory, as an FMA's memory operand, where hoisted they
            // took 13 register loads and three spilled partial sums per 16 entries.
            let kp: *const Consts = black_box(&k);
            let (z0, o0) = (_mm256_loadu_ps(zp.add(at)), _mm256_loadu_ps(op.add(at)));
            let (e0, kept0, s0) = entry(&*kp, z0, o0);
            _mm256_storeu_ps(gp.add(at), kept0);
            let (z1, o1) = (
                _mm256_loadu_ps(zp.add(at + 8)),
                _mm256_loadu_ps(op.add(at + 8)),
            );
            let (e1, kept1, s1) = entry(&*kp, z1, o1);
            _mm256_storeu_ps(gp.add(at + 8), kept1);
            // `e + acc`, as `acc[l] += e` (IEEE addition commutes bit for bit).
            acc0 = _mm256_add_ps(acc0, e0);
            acc1 = _mm256_add_ps(acc1, e1);
            any = _mm256_or_ps(any, _mm256_or_ps(s0, s1));
        }
        let mut acc = [0.0f32; LINE];
        _mm256_storeu_ps(acc.as_mut_ptr(), acc0);
        _mm256_storeu_ps(acc.as_mut_ptr().add(8), acc1);
        (acc, _mm256_movemask_ps(any) != 0)
    }
}
