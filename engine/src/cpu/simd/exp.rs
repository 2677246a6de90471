//! `exp` for kernels that run one per entry (the fused loss's sweep 2), compiled per
//! dispatch level through [`MulAdd`].
//!
//! Why a second f32 `exp` beside `dtype::exp_f32`: that one is a degree-7 Taylor
//! polynomial with range clamps and two selects, written with `f32::mul_add`, which at the
//! portable level (no FMA) is a libm `fmaf` call per term: the fused loss at 512 x 8142
//! took 92 ms there against 2 ms at AVX-512. Here the multiply-adds go through
//! [`MulAdd`], chosen by the caller's level (one FMA, or a multiply and an add), and the
//! polynomial is a minimax fit one degree lower with fewer operations around it.
use crate::Float;

/// How a kernel's `a * b + c` compiles at its level. A type, not a flag: the choice is
/// made once per kernel (by [`super::with_simd_fma`]), never per call.
pub trait MulAdd: Copy + 'static {
    /// f32 lanes in one of the level's vector registers (4, 8, 16), for kernels whose
    /// best accumulator count differs by level (the fused loss's sweep 2).
    const VECTOR_F32: usize;
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// The AVX2 level: one FMA instruction, one rounding.
#[derive(Clone, Copy)]
pub struct Fused;

/// The AVX-512 level: [`Fused`]'s arithmetic, in 16-lane registers.
#[derive(Clone, Copy)]
pub struct FusedWide;

/// The portable level: a multiply then an add. `f32::mul_add` here would be exact but a
/// libm call (`fmaf`) per use.
#[derive(Clone, Copy)]
pub struct Separate;

impl MulAdd for Fused {
    const VECTOR_F32: usize = 8;
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for FusedWide {
    const VECTOR_F32: usize = 16;
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Separate {
    const VECTOR_F32: usize = 4;
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// What the per-entry kernels need from their element type beyond [`Float`], at the
/// multiply-add `M` of their level.
pub trait SimdFloat: Float {
    /// `self * b + c`: f32 through `M`; f64 as a multiply and an add (the f64 kernels are
    /// the exact reference the f32 ones are checked against, not a fast path).
    fn mul_add_at<M: MulAdd>(self, b: Self, c: Self) -> Self;
    /// `e^self` for `self <= 88` or NaN (a softmax's `u - max u`, or `u` less the midpoint
    /// of a clamp's range): f32 by `exp_f32_unclamped` (this file); f64 by libm, every
    /// digit, for the gradient checks.
    fn exp_below_88_at<M: MulAdd>(self) -> Self;
    /// `|self|` (clearing the sign bit: one `and`).
    fn abs(self) -> Self;
}

impl SimdFloat for f32 {
    #[inline(always)]
    fn mul_add_at<M: MulAdd>(self, b: f32, c: f32) -> f32 {
        M::mul_add(self, b, c)
    }
    #[inline(always)]
    fn exp_below_88_at<M: MulAdd>(self) -> f32 {
        exp_f32_unclamped::<M>(self)
    }
    #[inline(always)]
    fn abs(self) -> f32 {
        f32::abs(self)
    }
}

impl SimdFloat for f64 {
    #[inline(always)]
    fn mul_add_at<M: MulAdd>(self, b: f64, c: f64) -> f64 {
        self * b + c
    }
    #[inline(always)]
    fn exp_below_88_at<M: MulAdd>(self) -> f64 {
        self.exp()
    }
    #[inline(always)]
    fn abs(self) -> f64 {
        f64::abs(self)
    }
}

/// Where [`exp_f32`] clamps from below: `n = -127` there, whose `2^n` field is all zeros,
/// so the result is exactly 0 (as it is, rounded, for every `x` below about -103.3).
const FLUSH: f32 = -88.0;
/// `ln(f32::MAX)`: clamping here makes `n` at most 128 (and `2^128` is `+inf`).
const HIGHEST: f32 = 88.722_83;

/// `e^x` for f32 in about 13 vector operations, with `M`'s multiply-adds.
///
/// `x = n ln2 + r` with `n` the integer nearest `x log2(e)` and `|r| <= ln2 / 2`, then
/// `e^x = 2^n e^r`:
/// - `n` by adding `1.5 * 2^23 + 127`: in `[2^23, 2^24)` floats are the integers, so the
///   sum rounds `x log2(e)` to the nearest one and holds `n + 127` in its low mantissa
///   bits; shifting those bits left by 23 is `2^n` (the exponent field), with no
///   float-to-int conversion (which does not vectorise).
/// - `r = x - n ln2` in two steps (Cody and Waite): `LN2_HI` has 16 significant bits, so
///   `n * LN2_HI` is exact for `|n| <= 256`, and `LN2_LO` carries the rest of `ln2`.
/// - `e^r` by `1 + r + r^2 q(r)` (Horner's rule, six multiply-adds), `q` of degree 4: a
///   minimax fit of the relative error on `|r| <= 0.3467` whose truncation error, with the
///   coefficients rounded to f32, is below 3.7e-9 (a thirtieth of an f32 ulp), so the
///   result's error is f32 rounding. The Taylor polynomial of the same degree is 40 times
///   worse (1.2e-7, an ulp); `dtype::exp_f32` pays a seventh multiply-add for that.
///
/// Range: from `x = -87.68` down (where `n` reaches -127), and at `-inf`, the result is 0,
/// as softmax expects; between there and `-87.3365` it is `2^-126 e^r` rounded to a
/// subnormal, within a subnormal's spacing of `e^x`; `x` from 88.38 (where `n` reaches 128)
/// and `+inf` give `+inf`, slightly before f32's true overflow at 88.72; NaN stays NaN (so
/// a kernel's sum turns NaN). Both clamps are one `max` or `min` that keeps NaN: at the
/// bottom this replaced a compare and a select after the polynomial that zeroed every
/// result below `-87.3365` (one operation more per entry at AVX2).
#[inline(always)]
pub fn exp_f32<M: MulAdd>(x: f32) -> f32 {
    // `x > HIGHEST ? HIGHEST : x` is x86's `minps(HIGHEST, x)`, which returns `x` if NaN.
    exp_f32_unclamped::<M>(if x > HIGHEST { HIGHEST } else { x })
}

/// [`exp_f32`] without its clamp at the top, for `x <= 88.37` or NaN: one `min` fewer
/// per entry where the caller knows its range (the fused loss's `u - max u <= 0`). Above
/// 88.38 the exponent field wraps and the result is garbage.
#[inline(always)]
pub fn exp_f32_unclamped<M: MulAdd>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    /// `1.5 * 2^23 + 127`: see above.
    const ROUND_BIAS: f32 = 12_583_039.0;
    /// `q(r)`'s coefficients, the constant term first: Lawson's iteratively reweighted
    /// least squares (which converges to the minimax fit) in f64 on 20001 points, with
    /// `1 + r` held fixed so that `e^r` is exact to first order at 0.
    const Q: [f32; 5] = [
        0.499_999_94,
        0.166_665_21,
        0.041_668_39,
        0.008_368_745,
        0.001_381_454,
    ];
    // `x < FLUSH ? FLUSH : x` is x86's `maxps(FLUSH, x)`, which returns `x` if NaN.
    let x = if x < FLUSH { FLUSH } else { x };
    let biased = M::mul_add(x, LOG2E, ROUND_BIAS);
    let n = biased - ROUND_BIAS;
    let r = M::mul_add(n, -LN2_LO, M::mul_add(n, -LN2_HI, x));
    let mut p = Q[4];
    for c in [Q[3], Q[2], Q[1], Q[0], 1.0, 1.0] {
        p = M::mul_add(p, r, c);
    }
    let two_n = f32::from_bits(biased.to_bits() << 23);
    p * two_n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ln(2^-126)`: below it `e^x` is subnormal.
    const LOWEST: f32 = -87.336_54;

    /// `exp_f32::<M>(x)` against f64's `exp` of the same `x`: the error in units of the
    /// f32 spacing at the exact value, or what the range rules above promise.
    fn check<M: MulAdd>() -> f64 {
        let mut worst: f64 = 0.0;
        // Every 2^-10 from -110 (well below the flush) to 89 (above the overflow), and
        // the neighbours of each edge.
        let grid = (-110 * 1024..89 * 1024).map(|i| i as f32 / 1024.0);
        let edges = [
            LOWEST,
            FLUSH,
            -87.68,
            HIGHEST,
            88.376,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -1e-30,
            1e-30,
        ];
        let near = edges.iter().flat_map(|&e| {
            (-4i32..=4).map(move |k| f32::from_bits((e.to_bits() as i32 + k) as u32))
        });
        for x in grid.chain(near) {
            let (got, exact) = (exp_f32::<M>(x) as f64, (x as f64).exp());
            let subnormal = f32::from_bits(1) as f64;
            if x < LOWEST {
                // 0 from about -87.68 down (`n = -127` from -87.6828), else a subnormal
                // within one subnormal spacing.
                let ok = if got == 0.0 {
                    x <= -87.68
                } else {
                    x > -87.69 && (got - exact).abs() <= subnormal
                };
                assert!(ok, "exp({x}) = {got:e}, exact {exact:e}");
            } else if got.is_infinite() {
                // Overflow, at most 0.35 early (n = 128).
                assert!(got > 0.0 && x >= 88.37, "exp({x}) = {got}, exact {exact:e}");
            } else {
                let ulp = (f32::EPSILON as f64) * 2f64.powi(exact.log2().floor() as i32);
                // Results just below the smallest normal are subnormal: absolute spacing.
                let ulp = ulp.max(subnormal);
                worst = worst.max((got - exact).abs() / ulp);
            }
        }
        assert_eq!(exp_f32::<M>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32::<M>(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32::<M>(f32::NAN).is_nan());
        assert!(exp_f32::<M>(-f32::NAN).is_nan());
        worst
    }

    #[test]
    fn exp_is_within_one_and_a_half_ulp_of_f64_exp_over_the_whole_range() {
        let fused = check::<Fused>();
        let separate = check::<Separate>();
        eprintln!("worst error: {fused:.3} ulp fused, {separate:.3} ulp separate");
        assert!(fused <= 1.5 && separate <= 1.5, "{fused} {separate}");
    }

    /// Below the clamp the two are the same operations, so the ulp bound above carries
    /// over: checked bit for bit on the same grid and edges, and at `-inf` and NaN.
    fn check_unclamped_matches<M: MulAdd>() {
        let grid = (-110 * 1024..88 * 1024).map(|i| i as f32 / 1024.0);
        let edges = [LOWEST, FLUSH, 88.37, 0.0, -0.0, -1e-30, f32::NEG_INFINITY];
        let near = edges.iter().flat_map(|&e| {
            (-4i32..=0).map(move |k| f32::from_bits((e.to_bits() as i32 + k) as u32))
        });
        for x in grid.chain(near) {
            let (a, b) = (exp_f32_unclamped::<M>(x), exp_f32::<M>(x));
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "exp({x}): {a} unclamped, {b} clamped"
            );
        }
        assert!(exp_f32_unclamped::<M>(f32::NAN).is_nan());
    }

    #[test]
    fn unclamped_exp_is_exp_below_the_clamp() {
        check_unclamped_matches::<Fused>();
        check_unclamped_matches::<Separate>();
    }

    #[test]
    fn f64_keeps_libm_exp() {
        for x in [-745.5, -20.25, 0.0, 1.0, 709.0] {
            assert_eq!(x.exp_below_88_at::<Fused>(), f64::exp(x));
            assert_eq!(x.exp_below_88_at::<Separate>(), f64::exp(x));
        }
    }
}
