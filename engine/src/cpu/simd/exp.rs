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
use std::ops::{BitOr, BitXor};

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
    /// `e^self` for `-86.5 <= self <= 88.3` (a value shifted by a clamp range's midpoint):
    /// f32 by `exp_f32_bounded` (this file), bit for bit `exp_below_88_at` there, with two
    /// operations fewer; outside that range (NaN and infinities included) the result is
    /// unspecified, so the caller must detect such inputs itself. f64 by libm.
    fn exp_bounded_at<M: MulAdd>(self) -> Self;
    /// `|self|` (clearing the sign bit: one `and`).
    fn abs(self) -> Self;
    /// The value's bits, so that a loop can tell two values apart with an `xor` and collect
    /// the differences with an `or` (two integer operations, off the float ports).
    type Bits: Copy + Default + PartialEq + BitOr<Output = Self::Bits> + BitXor<Output = Self::Bits>;
    fn lane_bits(self) -> Self::Bits;
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
    #[inline(always)]
    fn exp_bounded_at<M: MulAdd>(self) -> f32 {
        exp_f32_bounded::<M>(self)
    }
    type Bits = u32;
    #[inline(always)]
    fn lane_bits(self) -> u32 {
        self.to_bits()
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
    #[inline(always)]
    fn exp_bounded_at<M: MulAdd>(self) -> f64 {
        self.exp()
    }
    type Bits = u64;
    #[inline(always)]
    fn lane_bits(self) -> u64 {
        self.to_bits()
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
    /// `1.5 * 2^23 + 127`: see [`exp_f32`].
    const ROUND_BIAS: f32 = 12_583_039.0;
    // `x < FLUSH ? FLUSH : x` is x86's `maxps(FLUSH, x)`, which returns `x` if NaN.
    let x = if x < FLUSH { FLUSH } else { x };
    let (biased, p) = reduce_and_fit::<M>(x, ROUND_BIAS);
    let two_n = f32::from_bits(biased.to_bits() << 23);
    p * two_n
}

/// [`exp_f32_unclamped`] for `-86.5 <= x <= 88.3` only, bit for bit the same there, in two
/// vector operations fewer (a quarter of the AVX2 one-pass loss sweep's float work was
/// the `exp`'s clamp and scale): no clamp at the bottom, and `2^n` applied by adding `n`
/// to `e^r`'s exponent field (an integer add, which runs beside the float ports) instead
/// of building `2^n` and multiplying. Both give `e^r 2^n` exactly while the result is a
/// normal number: `e^r` lies in `[0.707, 1.415]` (exponent field 126 or 127) and
/// `n = round(x log2 e)` in `[-125, 127]` here. Rounding `x log2 e` against `1.5 * 2^23`
/// instead of `1.5 * 2^23 + 127` gives the same `n`: the two differ only on an exact tie,
/// and `x log2 e` (both factors with an odd 24-bit significand) is a half-integer only for
/// `|x| >= 2^22`. Outside the range (NaN and infinities too) the exponent field wraps: the
/// result is garbage, and callers must catch such inputs themselves.
#[inline(always)]
pub fn exp_f32_bounded<M: MulAdd>(x: f32) -> f32 {
    let (biased, p) = reduce_and_fit::<M>(x, coefficients::BOUNDED_ROUND_BIAS);
    // The low 9 bits of `biased` are `n` mod 512: shifted to the exponent field they are
    // `n << 23` mod 2^32, and the wrapping add moves `e^r`'s exponent by `n`.
    f32::from_bits(p.to_bits().wrapping_add(biased.to_bits() << 23))
}

/// The range reduction's and the polynomial's constants: one copy, shared with the AVX2
/// loss loop written by hand (`cpu/loss/shifted_avx2.rs`), which must give the same bits.
pub(crate) mod coefficients {
    pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
    pub(crate) const LN2_HI: f32 = 0.693_145_75;
    pub(crate) const LN2_LO: f32 = 1.428_606_8e-6;
    /// `q(r)`'s coefficients, the constant term first: Lawson's iteratively reweighted
    /// least squares (which converges to the minimax fit) in f64 on 20001 points, with
    /// `1 + r` held fixed so that `e^r` is exact to first order at 0.
    pub(crate) const Q: [f32; 5] = [
        0.499_999_94,
        0.166_665_21,
        0.041_668_39,
        0.008_368_745,
        0.001_381_454,
    ];
    /// `exp_f32_bounded`'s rounding constant, `1.5 * 2^23`: the sum's low mantissa bits
    /// hold `n` itself (two's complement).
    pub(crate) const BOUNDED_ROUND_BIAS: f32 = 12_582_912.0;
}

/// [`exp_f32`]'s range reduction and polynomial: `x log2 e + round_bias` rounded to an integer
/// (as `biased`, whose low mantissa bits the callers turn into `2^n`), and `e^r`.
#[inline(always)]
fn reduce_and_fit<M: MulAdd>(x: f32, round_bias: f32) -> (f32, f32) {
    use coefficients::{LN2_HI, LN2_LO, LOG2E, Q};
    let biased = M::mul_add(x, LOG2E, round_bias);
    let n = biased - round_bias;
    let r = M::mul_add(n, -LN2_LO, M::mul_add(n, -LN2_HI, x));
    let mut p = Q[4];
    for c in [Q[3], Q[2], Q[1], Q[0], 1.0, 1.0] {
        p = M::mul_add(p, r, c);
    }
    (biased, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::LN_2;

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

    /// Over its range the bounded `exp` is the unclamped one's arithmetic with `2^n` applied
    /// as an integer add, so the bits must match: every 2^-12 from -86.5 to 88.3 and the
    /// neighbours of the ends, of 0, of each `n`'s rounding boundary near them.
    fn check_bounded_matches<M: MulAdd>() {
        let grid = (-865 * 4096 / 10..=883 * 4096 / 10).map(|i| i as f32 / 4096.0);
        let edges = [
            -86.5,
            88.3,
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            0.5 * LN_2,
            -0.5 * LN_2,
        ];
        let near = edges.iter().flat_map(|&e: &f32| {
            (-8i32..=8).map(move |k| f32::from_bits((e.to_bits() as i32 + k) as u32))
        });
        for x in grid.chain(near).filter(|x| (-86.5..=88.3).contains(x)) {
            let (a, b) = (exp_f32_bounded::<M>(x), exp_f32_unclamped::<M>(x));
            assert_eq!(a.to_bits(), b.to_bits(), "exp({x}): {a} bounded, {b}");
        }
    }

    #[test]
    fn bounded_exp_is_the_unclamped_exp_over_its_range() {
        check_bounded_matches::<Fused>();
        check_bounded_matches::<FusedWide>();
        check_bounded_matches::<Separate>();
    }

    #[test]
    fn f64_keeps_libm_exp() {
        for x in [-745.5, -20.25, 0.0, 1.0, 709.0] {
            assert_eq!(x.exp_below_88_at::<Fused>(), f64::exp(x));
            assert_eq!(x.exp_below_88_at::<Separate>(), f64::exp(x));
            assert_eq!(x.exp_bounded_at::<Fused>(), f64::exp(x));
        }
    }
}
