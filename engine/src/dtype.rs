//! Element types. CPU kernels are generic over [`Float`]; f32 is the training dtype, f64 is
//! what finite-difference gradient checks run in.
use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    F32,
    F64,
}

impl DType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// What a CPU kernel needs from its element type.
pub trait Float:
    Copy
    + Send
    + Sync
    + PartialOrd
    + fmt::Debug
    + Default
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
    + 'static
{
    const DTYPE: DType;
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
    /// `exp` written so that it vectorises (f32: a polynomial, about 1 ulp); f64 keeps libm's
    /// exact `exp` because f64 is where gradient checks need every digit.
    fn fast_exp(self) -> Self;
    /// `ln` of a positive, normal, finite value, written so that it vectorises (f32: a
    /// polynomial, about 1 ulp); f64 keeps libm's `ln`. Other inputs give unspecified values.
    fn fast_ln(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn powf(self, p: Self) -> Self;
    fn is_finite(self) -> bool;
    fn max(self, o: Self) -> Self {
        if o > self {
            o
        } else {
            self
        }
    }
    fn min(self, o: Self) -> Self {
        if o < self {
            o
        } else {
            self
        }
    }
    /// IEEE `maxNum` (the other operand when one is NaN). An intrinsic, which LLVM's
    /// straight-line vectoriser handles where it leaves a hand-written select scalar.
    fn maxnum(self, o: Self) -> Self;
    /// IEEE `minNum`, see [`Float::maxnum`].
    fn minnum(self, o: Self) -> Self;
    /// `C = alpha * A B + beta * C` with arbitrary row/column strides (matrixmultiply).
    ///
    /// # Safety
    /// The pointers and strides must describe valid `m x k`, `k x n` and `m x n` matrices,
    /// and `c` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

/// The two impls differ only in the type, its `DType`, its GEMM and its `exp`.
macro_rules! impl_float {
    ($t:ident, $dtype:ident, $gemm:path, $exp:path, $ln:path) => {
        impl Float for $t {
            const DTYPE: DType = DType::$dtype;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn fast_exp(self) -> Self {
                $exp(self)
            }
            #[inline(always)]
            fn fast_ln(self) -> Self {
                $ln(self)
            }
            #[inline(always)]
            fn maxnum(self, o: Self) -> Self {
                $t::max(self, o)
            }
            #[inline(always)]
            fn minnum(self, o: Self) -> Self {
                $t::min(self, o)
            }
            fn ln(self) -> Self {
                $t::ln(self)
            }
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            fn powf(self, p: Self) -> Self {
                $t::powf(self, p)
            }
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
            }
        }
    };
}

// f64 keeps libm's exact `exp` and `ln`: f64 is where gradient checks need every digit.
impl_float!(f32, F32, matrixmultiply::sgemm, exp_f32, ln_f32);
impl_float!(f64, F64, matrixmultiply::dgemm, f64::exp, f64::ln);

/// `e^x` for f32 without a libm call, so loops that use it vectorise.
///
/// Range reduction `x = n ln2 + r` with `|r| <= ln2/2`, a degree-7 Taylor polynomial for
/// `e^r` (truncation error below 6e-9 relative, so float rounding dominates), and `2^n`
/// built in the exponent bits.
///
/// The polynomial uses `mul_add`: one FMA instead of a multiply and an add (Rust never
/// contracts `a * b + c` itself), which cuts both the instruction count and the dependency
/// chain by almost half. Kernels run it inside `simd::with_simd`, compiled with FMA; the
/// portable copy on an x86-64 CPU without FMA (older than 2013) would call libm's `fmaf`
/// instead: correct, but slow.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let xc = x.clamp(-87.3, 88.72);
    let n = xc.mul_add(LOG2E, 0.5).floor();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    // Horner's rule over 1/k!, highest power first.
    const INV_FACT: [f32; 7] = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let mut p: f32 = 1.0 / 5040.0;
    for c in INV_FACT {
        p = p.mul_add(r, c);
    }
    // 2^n in the exponent bits without a float-to-int conversion (which does not vectorise:
    // `as i32` saturates, a scalar select per lane). Adding 1.5*2^23 + 127 puts `n + 127` in
    // the low mantissa bits; shifting left by 23 moves them into the exponent field and
    // drops the rest. Exact because n is an integer in [-126, 128] after the clamp.
    let scale = f32::from_bits((n + 12_583_039.0).to_bits() << 23);
    let y = p * scale;
    // Below the clamp the true value is (sub)normal-tiny: flush to 0, as softmax expects.
    if x < -87.3 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// `ln x` for a positive, normal, finite f32 without a libm call, so loops that use it
/// vectorise (a softmax's `ln(sum)` per row, for rows spread across SIMD lanes).
///
/// `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))`, found with integer operations on the
/// bits; then `ln m = 2 atanh(f)`, `f = (m - 1)/(m + 1)`, `|f| <= 0.172`, by its odd series
/// up to `f^9` (truncation below 7e-10 relative). Zero, negative, subnormal, infinite and
/// NaN inputs give unspecified values: callers pass sums that are at least 1.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    const SQRT_HALF_BITS: u32 = 0x3f35_04f3;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Subtracting sqrt(1/2)'s bits makes the exponent field count from m >= sqrt(1/2); the
    // mantissa bits plus sqrt(1/2)'s bits then rebuild m.
    let t = x.to_bits().wrapping_sub(SQRT_HALF_BITS);
    let e = ((t as i32) >> 23) as f32;
    let m = f32::from_bits((t & 0x007f_ffff) + SQRT_HALF_BITS);
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let series = (1.0f32 / 9.0).mul_add(f2, 1.0 / 7.0).mul_add(f2, 1.0 / 5.0);
    let series = series.mul_add(f2, 1.0 / 3.0) * f2;
    let two_f = f + f;
    e.mul_add(LN2_HI, two_f.mul_add(series, e.mul_add(LN2_LO, two_f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp_f32(x), x.exp());
            assert!(((a - b) / b).abs() < 2.0e-7, "exp({x}) = {a}, libm {b}");
            x += 0.0137;
        }
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn ln_f32_is_within_two_ulp_of_libm() {
        // Geometric steps over the normal range, plus the neighbourhood of 1 where ln is
        // small and only a relative error bound means anything.
        let mut xs = vec![1.0f32, f32::MIN_POSITIVE, f32::MAX];
        let mut x = f32::MIN_POSITIVE;
        while x < 3.0e38 {
            xs.push(x);
            x *= 1.000_37;
        }
        xs.extend((1..2000).map(|i| 1.0 + i as f32 * 1.0e-5));
        xs.extend((1..2000).map(|i| 1.0 - i as f32 * 1.0e-5));
        for x in xs {
            let (a, b) = (ln_f32(x), (x as f64).ln());
            let err = (a as f64 - b).abs();
            assert!(err <= 2.4e-7 * b.abs(), "ln({x:e}) = {a:e}, exact {b:e}");
        }
    }
}
