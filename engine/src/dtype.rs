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
    ($t:ident, $dtype:ident, $gemm:path, $exp:path) => {
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

// f64 keeps libm's exact `exp`: f64 is where gradient checks need every digit.
impl_float!(f32, F32, matrixmultiply::sgemm, exp_f32);
impl_float!(f64, F64, matrixmultiply::dgemm, f64::exp);

/// `e^x` for f32 without a libm call, so loops that use it vectorise.
///
/// Range reduction `x = n ln2 + r` with `|r| <= ln2/2`, a degree-7 Taylor polynomial for
/// `e^r` (truncation error below 6e-9 relative, so float rounding dominates), and `2^n` built in the exponent bits.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let xc = x.clamp(-87.3, 88.72);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * LN2_HI - n * LN2_LO;
    // Horner's rule over 1/k!, highest power first.
    const INV_FACT: [f32; 8] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let mut p = 0.0;
    for c in INV_FACT {
        p = p * r + c;
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
}
