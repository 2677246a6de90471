//! Runtime SIMD dispatch. Kernels write plain loops over fixed-width lane arrays; wrapping
//! the loop in [`with_simd`] compiles a copy per level (portable, AVX2+FMA, AVX-512) and
//! runs the one `ARBOR_SIMD` or the CPU selects, so one source serves every x86-64 CPU
//! (other architectures run the portable copy).
//!
//! Why lane arrays: a float sum `s += x[i]` cannot be vectorised without reassociating, which
//! LLVM will not do for IEEE floats. Accumulating into `LANES` independent partial sums is an
//! explicit reassociation that LLVM maps onto one vector register.
mod exp;
pub(crate) use exp::coefficients as exp_coefficients;
mod level;

use crate::Float;
pub use exp::{exp_f32, Fused, FusedWide, MulAdd, Separate, SimdFloat};
pub use level::{level, level_name, try_level, Level};

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

/// True when the CPU also has AVX-512 (F, VL, BW, DQ): 16 f32 lanes instead of 8.
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True on a CPU that has AVX-512 but executes each 512-bit instruction as two halves on
/// 256-bit units: AMD's Zen 4 (family 19h; its 512-bit FMAs issue at half the rate of its
/// 256-bit ones). There a 16-lane kernel does no more multiply-adds per cycle than an
/// 8-lane one, so the conv dispatch takes AVX2's Winograd rules at AVX-512 too (see
/// `conv::dispatch`). Read once: `cpuid` traps to the hypervisor on a VM.
///
/// Zen 5's desktop and server parts (family 1Ah) have full 512-bit units; which of its
/// mobile parts halve them is not visible in `cpuid`, so family 1Ah counts as full.
pub fn avx512_on_256_bit_units() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HALVED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HALVED.get_or_init(|| has_avx512() && amd_family() == Some(0x19))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The CPU family (base plus extended, as AMD's manuals define it) when the vendor is AMD.
#[cfg(target_arch = "x86_64")]
fn amd_family() -> Option<u32> {
    use std::arch::x86_64::__cpuid;
    // Leaves 0 and 1 exist on every x86-64 CPU.
    let vendor = __cpuid(0);
    let amd = [vendor.ebx, vendor.edx, vendor.ecx] == [0x6874_7541, 0x6974_6e65, 0x444d_4163];
    if !amd {
        return None;
    }
    Some(family_of(__cpuid(1).eax))
}

/// The family in `cpuid` leaf 1's `eax`: the base family, plus the extended family when
/// the base is 0xF (AMD's definition, which Intel's agrees with for every family it uses).
#[cfg(any(target_arch = "x86_64", test))]
fn family_of(eax: u32) -> u32 {
    let base = (eax >> 8) & 0xf;
    let extended = (eax >> 20) & 0xff;
    if base == 0xf {
        base + extended
    } else {
        base
    }
}

/// Runs `f`, compiled for the active [`Level`] (AVX-512, AVX2+FMA, or neither). Call it
/// inside each rayon task (the target feature is a property of the compiled code, not of
/// the thread).
#[inline(always)]
pub fn with_simd<R, F: FnOnce() -> R>(f: F) -> R {
    with_level(level(), f)
}

/// Runs `f` compiled for `level`, or for the best lower level the CPU has when it lacks
/// this one (never an illegal instruction).
#[inline(always)]
pub fn with_level<R, F: FnOnce() -> R>(level: Level, f: F) -> R {
    match runnable(level) {
        // SAFETY (both arms): `runnable` checked that the CPU has the callee's features.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { call_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { call_avx2(f) },
        _ => f(),
    }
}

/// `level`, or the best lower level this CPU has.
#[inline(always)]
fn runnable(level: Level) -> Level {
    if level == Level::Avx512 && has_avx512() {
        Level::Avx512
    } else if level >= Level::Avx2 && has_avx2_fma() {
        Level::Avx2
    } else {
        Level::Portable
    }
}

/// A kernel generic over its level's multiply-add, for [`with_simd_fma`]: `run` is
/// written once and compiled at [`FusedWide`] for AVX-512, [`Fused`] for AVX2, at [`Separate`] for the
/// portable one. (A trait, because a closure cannot be generic.)
pub trait MulAddKernel {
    type Output;
    /// The kernel with `M`'s multiply-adds. Mark it `#[inline(always)]`, as the closures
    /// given to [`with_simd`]: out of line it would be compiled without the level's features.
    fn run<M: MulAdd>(self) -> Self::Output;
}

/// Runs `kernel` compiled for the active [`Level`], with that level's [`MulAdd`].
#[inline(always)]
pub fn with_simd_fma<K: MulAddKernel>(kernel: K) -> K::Output {
    with_level_fma(level(), kernel)
}

/// [`with_simd_fma`] at `level` (or the best lower level the CPU has).
#[inline(always)]
pub fn with_level_fma<K: MulAddKernel>(level: Level, kernel: K) -> K::Output {
    match runnable(level) {
        Level::Portable => kernel.run::<Separate>(),
        Level::Avx2 => with_level(
            Level::Avx2,
            #[inline(always)]
            || kernel.run::<Fused>(),
        ),
        level => with_level(
            level,
            #[inline(always)]
            || kernel.run::<FusedWide>(),
        ),
    }
}

/// `f()` compiled with AVX2+FMA.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn call_avx2<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

/// `f()` compiled with AVX-512 (F, VL, BW, DQ) and AVX2+FMA.
///
/// # Safety
/// The CPU must have those features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
pub unsafe fn call_avx512<R, F: FnOnce() -> R>(f: F) -> R {
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

/// Maximum of a non-empty slice, with four `LANES`-wide running maxima: one would be a
/// chain of dependent `max`es (4 cycles each), the bottleneck on a row in L1.
#[inline(always)]
pub fn max<T: Float>(x: &[T]) -> T {
    let mut acc = [[T::NEG_INFINITY; LANES]; 4];
    let chunks = x.chunks_exact(4 * LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, c) in acc.iter_mut().zip(c.chunks_exact(LANES)) {
            for l in 0..LANES {
                a[l] = if c[l] > a[l] { c[l] } else { a[l] };
            }
        }
    }
    let [a0, a1, a2, a3] = acc;
    let mut lanes = [T::NEG_INFINITY; LANES];
    for l in 0..LANES {
        lanes[l] = a0[l].max(a1[l]).max(a2[l].max(a3[l]));
    }
    tail.iter()
        .fold(fold_lanes(lanes, T::max), |m, &t| m.max(t))
}

/// The sum of a lane array, see [`fold_lanes`].
#[inline(always)]
pub fn fold_sum<T: Float, const W: usize>(acc: [T; W]) -> T {
    fold_lanes(acc, |a, b| a + b)
}

/// Combines a lane array's entries by halving (`a[l] = op(a[l], a[l + w/2])`), so that
/// LLVM works on whole vectors instead of folding the lanes one by one: one by one, a
/// 32-lane sum was 40 ns a row at C = 10.
#[inline(always)]
pub fn fold_lanes<T: Float, const W: usize>(mut acc: [T; W], op: impl Fn(T, T) -> T) -> T {
    let mut w = W;
    while w > 1 {
        let half = w / 2;
        for l in 0..half {
            acc[l] = op(acc[l], acc[l + half]);
        }
        if w % 2 == 1 {
            acc[0] = op(acc[0], acc[w - 1]);
        }
        w = half;
    }
    acc[0]
}

/// `sum_i exp(x_i - shift)`, written to `out` when given.
#[inline(always)]
pub fn sum_exp_shifted<T: Float>(x: &[T], shift: T, out: Option<&mut [T]>) -> T {
    // Fixed-width chunks (not `chunks`): a loop of constant trip count is what LLVM turns
    // into one vector operation per chunk.
    let mut acc = [T::ZERO; LANES];
    let mut tail = T::ZERO;
    match out {
        Some(out) => {
            let mut oc = out.chunks_exact_mut(LANES);
            let mut xc = x.chunks_exact(LANES);
            for (o, v) in (&mut oc).zip(&mut xc) {
                for l in 0..LANES {
                    let e = (v[l] - shift).fast_exp();
                    o[l] = e;
                    acc[l] += e;
                }
            }
            for (o, &v) in oc.into_remainder().iter_mut().zip(xc.remainder()) {
                *o = (v - shift).fast_exp();
                tail += *o;
            }
        }
        None => {
            let xc = x.chunks_exact(LANES);
            let rem = xc.remainder();
            for v in xc {
                for l in 0..LANES {
                    acc[l] += (v[l] - shift).fast_exp();
                }
            }
            for &v in rem {
                tail += (v - shift).fast_exp();
            }
        }
    }
    let mut s = tail;
    for a in acc {
        s += a;
    }
    s
}

/// `sum_i a_i * b_i`.
#[inline(always)]
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut s = T::ZERO;
    for (&x, &y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x * y;
    }
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    for a in acc {
        s += a;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaf 1 `eax` of parts whose families are documented: Zen 4 (19h), Zen 5 (1Ah),
    /// Zen 1 (17h), Sapphire Rapids (6).
    #[test]
    fn cpu_family_from_cpuid() {
        assert_eq!(family_of(0x00a1_0f11), 0x19);
        assert_eq!(family_of(0x00b0_0f21), 0x1a);
        assert_eq!(family_of(0x0080_0f12), 0x17);
        assert_eq!(family_of(0x0008_06f8), 6);
    }

    /// On Linux, the family read from `cpuid` is the kernel's `cpu family`, and only a
    /// Zen 4 with AVX-512 counts as running it on 256-bit units.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn cpu_family_matches_the_kernel() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            eprintln!("skipped: /proc/cpuinfo unreadable");
            return;
        };
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        };
        let amd = field("vendor_id").as_deref() == Some("AuthenticAMD");
        let family = field("cpu family").and_then(|f| f.parse::<u32>().ok());
        assert_eq!(amd_family(), if amd { family } else { None });
        assert_eq!(
            avx512_on_256_bit_units(),
            amd && family == Some(0x19) && has_avx512()
        );
    }

    #[test]
    fn lane_reductions_match_naive() {
        let x: Vec<f64> = (0..37).map(|i| ((i * 7919) % 101) as f64 - 50.0).collect();
        assert_eq!(
            with_simd(
                #[inline(always)]
                || sum(&x)
            ),
            x.iter().sum::<f64>()
        );
        assert_eq!(
            with_simd(
                #[inline(always)]
                || max(&x)
            ),
            50.0
        );
        let naive: f64 = x.iter().map(|v| (v - 3.0).exp()).sum();
        let fast = with_simd(
            #[inline(always)]
            || sum_exp_shifted(&x, 3.0, None),
        );
        assert!((fast - naive).abs() < 1e-9 * naive);
        assert_eq!(dot(&x, &x), x.iter().map(|v| v * v).sum::<f64>());
    }
}
