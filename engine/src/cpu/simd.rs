//! Runtime SIMD dispatch. Kernels write plain loops over fixed-width lane arrays; wrapping
//! the loop in [`with_simd`] compiles a second copy with AVX2+FMA enabled and picks it at
//! run time when the CPU has them, so one source serves every x86-64 CPU (and other
//! architectures fall back to the portable copy).
//!
//! Why lane arrays: a float sum `s += x[i]` cannot be vectorised without reassociating, which
//! LLVM will not do for IEEE floats. Accumulating into `LANES` independent partial sums is an
//! explicit reassociation that LLVM maps onto one vector register.
use crate::Float;

/// Partial sums per reduction: 8 f32 fill one AVX2 register (and two for f64).
pub const LANES: usize = 8;

/// True when the CPU supports AVX2 and FMA (checked once, then cached by std).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f`, compiled with AVX2+FMA when the CPU has them. Call it inside each rayon task
/// (the target feature is a property of the compiled code, not of the thread).
#[inline(always)]
pub fn with_simd<R, F: FnOnce() -> R>(f: F) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: the CPU supports every feature the callee was compiled with.
            return unsafe { call_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn call_avx2<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

/// Sum of a slice with `LANES` partial sums (vectorises, and is more accurate than a
/// running sum for long rows).
#[inline(always)]
pub fn sum<T: Float>(x: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    let mut s = T::ZERO;
    for a in acc {
        s += a;
    }
    for &t in tail {
        s += t;
    }
    s
}

/// Maximum of a non-empty slice, `LANES` running maxima at a time.
#[inline(always)]
pub fn max<T: Float>(x: &[T]) -> T {
    let mut acc = [T::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = T::NEG_INFINITY;
    for a in acc.into_iter().chain(tail.iter().copied()) {
        m = if a > m { a } else { m };
    }
    m
}

/// `sum_i exp(x_i - shift)`, written to `out` when given.
#[inline(always)]
pub fn sum_exp_shifted<T: Float>(x: &[T], shift: T, out: Option<&mut [T]>) -> T {
    let mut acc = [T::ZERO; LANES];
    match out {
        Some(out) => {
            for (oc, xc) in out.chunks_mut(LANES).zip(x.chunks(LANES)) {
                for l in 0..xc.len() {
                    let e = (xc[l] - shift).fast_exp();
                    oc[l] = e;
                    acc[l] += e;
                }
            }
        }
        None => {
            for xc in x.chunks(LANES) {
                for l in 0..xc.len() {
                    acc[l] += (xc[l] - shift).fast_exp();
                }
            }
        }
    }
    let mut s = T::ZERO;
    for a in acc {
        s += a;
    }
    s
}

/// `sum_i a_i * b_i`.
#[inline(always)]
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    for (ac, bc) in a.chunks(LANES).zip(b.chunks(LANES)) {
        for l in 0..ac.len() {
            acc[l] += ac[l] * bc[l];
        }
    }
    let mut s = T::ZERO;
    for a in acc {
        s += a;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_match_naive() {
        let x: Vec<f64> = (0..37).map(|i| ((i * 7919) % 101) as f64 - 50.0).collect();
        assert_eq!(with_simd(|| sum(&x)), x.iter().sum::<f64>());
        assert_eq!(with_simd(|| max(&x)), 50.0);
        let naive: f64 = x.iter().map(|v| (v - 3.0).exp()).sum();
        let fast = with_simd(|| sum_exp_shifted(&x, 3.0, None));
        assert!((fast - naive).abs() < 1e-9 * naive);
        assert_eq!(dot(&x, &x), x.iter().map(|v| v * v).sum::<f64>());
    }
}
