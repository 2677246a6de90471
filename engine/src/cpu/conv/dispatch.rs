//! Which conv2d implementation runs each pass: the kernel tables of every SIMD level,
//! the measured rules that pick Winograd, the direct kernels or im2col + GEMM (with the
//! figures behind them), and `ARBOR_CONV`, which forces one for measuring.
use super::{direct, generic_conv2d, generic_input_grad, generic_weight_grad, winograd};
use crate::backend::Conv2dParams;
use crate::cpu::simd::Level;
use crate::Float;
use std::any::{Any, TypeId};

/// One of [`direct`](super::direct)'s entry points, as `(a, b, p)` to `Some(result)` or `None`.
pub type F32Kernel = fn(&[f32], &[f32], &Conv2dParams) -> Option<Vec<f32>>;

/// The direct kernel for `level`: `[forward, input grad, weight grad]`.
pub fn direct_kernels(level: Level) -> [F32Kernel; 3] {
    use direct::*;
    fn of<L: Lanes>() -> [F32Kernel; 3] {
        [conv2d::<L>, conv2d_input_grad::<L>, conv2d_weight_grad::<L>]
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => of::<Avx512>(),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => of::<Avx2>(),
        _ => of::<Portable>(),
    }
}

/// [`direct`](super::direct)'s forward with an epilogue applied as it stores, `(x, w, p, epilogue)`.
pub(super) type F32ForwardThen =
    fn(&[f32], &[f32], &Conv2dParams, direct::Epilogue) -> Option<Vec<f32>>;

/// The direct forward for `level` with an epilogue (see [`conv2d_bias_act`]).
pub(super) fn direct_forward_then(level: Level) -> F32ForwardThen {
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => direct::conv2d_then::<direct::Avx512>,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => direct::conv2d_then::<direct::Avx2>,
        _ => direct::conv2d_then::<direct::Portable>,
    }
}

/// The Winograd forward for `level` with an epilogue in its output transform, by
/// F(4x4, 3x3) when `four`, else F(2x2, 3x3).
pub(super) fn winograd_forward_then(level: Level, four: bool) -> F32ForwardThen {
    use direct::*;
    use winograd::{conv2d_then, F2, F4};
    fn of<L: Lanes>(four: bool) -> F32ForwardThen {
        if four {
            conv2d_then::<L, F4>
        } else {
            conv2d_then::<L, F2>
        }
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => of::<Avx512>(four),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => of::<Avx2>(four),
        _ => of::<Portable>(four),
    }
}

/// Winograd for `level`: `[forward, input grad, weight grad]` (`None` off stride-1 pad-1
/// 3x3 geometries), by F(2x2, 3x3) (`winograd_kernels`) or F(4x4, 3x3)
/// (`winograd4_kernels`).
fn winograd_tiled<F: winograd::Tiling>(level: Level) -> [F32Kernel; 3] {
    use direct::*;
    fn of<L: Lanes, F: winograd::Tiling>() -> [F32Kernel; 3] {
        use winograd::*;
        [
            conv2d::<L, F>,
            conv2d_input_grad::<L, F>,
            conv2d_weight_grad::<L, F>,
        ]
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => of::<Avx512, F>(),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => of::<Avx2, F>(),
        _ => of::<Portable, F>(),
    }
}

/// Winograd F(2x2, 3x3) for `level`: `[forward, input grad, weight grad]` (`None` off
/// stride-1 pad-1 3x3 geometries).
pub fn winograd_kernels(level: Level) -> [F32Kernel; 3] {
    winograd_tiled::<winograd::F2>(level)
}

/// Winograd F(4x4, 3x3) for `level`: `[forward, input grad, weight grad]` (`None` off
/// stride-1 pad-1 3x3 geometries).
pub fn winograd4_kernels(level: Level) -> [F32Kernel; 3] {
    winograd_tiled::<winograd::F4>(level)
}

/// The im2col + GEMM path in the same form as [`direct_kernels`] (always `Some`): what
/// the benches compare each level's direct kernels with.
pub fn im2col_kernels() -> [F32Kernel; 3] {
    [
        |x, w, p| Some(generic_conv2d(x, w, p)),
        |g, w, p| Some(generic_input_grad(g, w, p)),
        |g, x, p| Some(generic_weight_grad(g, x, p)),
    ]
}

/// The f32 path `ARBOR_CONV` forces (`direct`, `im2col`, `winograd` or `winograd4`;
/// read once), if any.
fn forced_path() -> Option<&'static str> {
    static CHOICE: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("ARBOR_CONV").as_deref() {
        Ok("direct") => Some("direct"),
        Ok("im2col") => Some("im2col"),
        Ok("winograd") => Some("winograd"),
        Ok("winograd4") => Some("winograd4"),
        _ => None,
    })
}

/// Whether the f32 passes (forward, input grad, weight grad) at `level` take the direct
/// kernels where [`uses_winograd`] does not take them (and the kernel takes the
/// geometry): `ARBOR_CONV=direct` or `im2col` forces either, else (also under
/// `ARBOR_CONV=winograd`) always at AVX-512 and AVX2, never for the portable level (whose
/// im2col GEMM, unpinned, is matrixmultiply's AVX2 or AVX-512 kernel, which its direct
/// kernels lost to; against matrixmultiply's fallback kernel, pinned, one run on Zen 5
/// was mixed, direct 1.1-1.5x faster at 16@32² and 0.7-0.8x at 64@8² forward and the
/// 32→64 s2 input grad, so the rule stays).
///
/// AVX2 used to send the input grad below 32 output columns and the weight grad below 16
/// to im2col, from timings on an AVX-512 host where, unknown then, matrixmultiply ran
/// its AVX-512 kernel under `ARBOR_SIMD=avx2` (see `matmul::gemm_isa`): a real AVX2
/// CPU's GEMM is about half as fast. With the GEMM pinned to AVX2
/// (`MMTEST_FEATURE=avx,avx2,fma`), on the 2-core Zen 5, `conv_kernels` (ms, two runs,
/// direct vs im2col): weight grad 64@8² 3.05, 3.28 vs 5.27, 4.36 and 32→64 s2 1.66, 1.66
/// vs 2.59, 2.58; input grad 64@8² 3.21, 3.67 vs 4.39, 4.17 and 32@16² 3.65, 3.25 vs
/// 4.90, 4.21. In ResNet-32 that changes one pass (Winograd takes the stride-1 ones):
/// `conv2d/fwd_bwd/32x16x16->64_s2`, three alternated pairs, 5.45-5.75 ms with the
/// direct weight grad against 6.42-6.71 with im2col's.
pub fn uses_direct(level: Level) -> bool {
    match forced_path() {
        Some("direct") => true,
        Some("im2col") => false,
        _ => level != Level::Portable,
    }
}

/// `s` as f32, when `T` is f32.
pub(super) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    // SAFETY: `T` is `f32` (same TypeId), so the cast is the identity.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// An f32 result as the `Vec<T>` it is (`T` is f32 whenever [`as_f32`] succeeded).
pub(super) fn from_f32<T: Float>(v: Vec<f32>) -> Option<Vec<T>> {
    let out: Box<dyn Any> = Box::new(v);
    out.downcast::<Vec<T>>().ok().map(|v| *v)
}

/// Whether the f32 forward and input grad of `p` take Winograd F(2x2, 3x3) (the weight
/// grad: [`uses_winograd_weight_grad`]; only where
/// [`winograd::takes`](super::winograd::takes) the geometry): always under `ARBOR_CONV=winograd`, never under
/// the other forced paths, else where it measured faster than the path it replaces.
///
/// Measured (batch 128, on the 2-core AVX-512 development VM; interleaved minimum-of-15
/// timings, ms, forward / input grad; the `winograd_vs_direct` bench agrees):
/// - AVX-512, against the direct kernels: 64 ch @ 8x8 1.97 vs 2.69 / 1.81 vs 2.82 (1.4x,
///   1.6x); 16 @ 32x32 3.24 vs 2.56 / 3.73 vs 3.34, slower (at 16 channels the transforms
///   cost about as much as the product; `perf` puts the product at about half the time).
///   32 @ 16x16 was within the host's noise with `V` and `M` stored tile-major; stored
///   element-major (see `winograd/product.rs`) Winograd / direct read, over 8 interleaved
///   `winograd_vs_direct` pairs on the loaded host, 0.62-1.07 forward (median 0.87) and
///   0.63-0.99 input grad (median 0.8), and the whole step (`train_step`, same binary,
///   the rule at 64 vs 32, two interleaved runs each) 347 vs 358 img/s training and 1263
///   vs 1300 evaluating. So: 32 and up.
/// - AVX2, against im2col + GEMM: 4.22 vs 5.86, 2.98 vs 4.28 and 2.73 vs 4.15 forward at
///   16, 32 and 64 channels (1.4x to 1.5x; the input grads alike). The AVX2 direct
///   forward measured 1.0-1.16x im2col, so Winograd still leads.
///   So: 16 and up.
/// - portable: 8.7 to 12.9 ms forward, slower than im2col + GEMM (whose GEMM picks AVX2
///   by itself on this CPU). So: never.
///
/// On a CPU whose AVX-512 runs on 256-bit units ([`rules_level`]) AVX-512 takes AVX2's
/// rules.
pub fn uses_winograd(level: Level, p: &Conv2dParams) -> bool {
    let channels = p.c_in.min(p.c_out);
    winograd::takes(p)
        && match forced_path() {
            Some("winograd" | "winograd4") => true,
            Some(_) => false,
            None => match rules_level(level) {
                Level::Avx512 => channels >= 32,
                Level::Avx2 => channels >= 16,
                Level::Portable => false,
            },
        }
}

/// The level whose measured Winograd rules apply at `level`: AVX2's on a CPU that runs
/// AVX-512 on 256-bit units ([`simd::avx512_on_256_bit_units`], AMD Zen 4), where a
/// 16-lane direct kernel does the work of an 8-lane one, so Winograd's 4x fewer
/// multiplies win from 16 channels as they do at AVX2; else `level` itself.
///
/// Measured on a 2-core Zen 4 ("AMD EPYC", family 25 model 17), `winograd_vs_direct/16x32`
/// at AVX-512, three rounds, ms, direct vs F(4x4, 3x3): forward 3.40, 3.76, 4.25 vs 2.60,
/// 2.74, 2.89; input grad 3.49, 3.82, 3.92 vs 2.36, 2.53, 2.98; weight grad 3.53, 3.72,
/// 5.29 vs 2.38, 2.85, 2.86 (F(2x2, 3x3) 3.06-3.22). On the Intel VM the direct kernel
/// led at 16 channels (the figures under [`uses_winograd`]).
///
/// [`simd::avx512_on_256_bit_units`]: crate::cpu::simd::avx512_on_256_bit_units
pub fn rules_level(level: Level) -> Level {
    if level == Level::Avx512 && crate::cpu::simd::avx512_on_256_bit_units() {
        Level::Avx2
    } else {
        level
    }
}

/// Whether the f32 forward and input grad that [`uses_winograd`] sends to Winograd take
/// F(4x4, 3x3) rather than F(2x2, 3x3): always under `ARBOR_CONV=winograd4`, never
/// under the other forced paths, else below 64 channels, where it measured faster.
///
/// Measured (`winograd_vs_direct`, batch 128, 2 threads, the loaded 2-core AVX-512 VM;
/// median of 3 to 5 interleaved runs, ms, F(4x4) vs F(2x2), forward / input grad):
/// - AVX2: 16 @ 32x32 4.98 vs 6.58 / 4.79 vs 6.01; 32 @ 16x16 3.36 vs 3.79 / 3.67 vs
///   3.97; 64 @ 8x8 3.99 vs 4.13 / 4.01 vs 4.05 (a tie once the register tiles fit the
///   image's 4 tiles, see `product::rows_per_tile`; 4.63 / 4.38 before).
/// - AVX-512: 32 @ 16x16 2.32 vs 3.59 / 2.73 vs 3.76; 64 @ 8x8 3.26 vs 2.71 / 3.00 vs
///   2.57 (slower: 4 tiles an image leave the product short rows); 16 @ 32x32 3.83 vs
///   the direct kernel's 3.56, which keeps it ([`uses_winograd`]).
///
/// The whole step (`train_step`, interleaved with the binary before F(4x4), 3 runs):
/// AVX2 612 → 551 ms training and 157 → 136 ms evaluating (medians); AVX-512 409 → 404
/// and 93 → 92.
pub fn uses_winograd4(level: Level, p: &Conv2dParams) -> bool {
    uses_winograd(level, p)
        && match forced_path() {
            Some("winograd4") => true,
            Some(_) => false,
            None => level != Level::Portable && p.c_in.min(p.c_out) < 64,
        }
}

/// Whether the f32 weight grad of `p` takes Winograd F(2x2, 3x3) (`winograd/weight.rs`;
/// only where [`winograd::takes`](super::winograd::takes) the geometry): always under
/// `ARBOR_CONV=winograd`, never under the other forced paths, else from 32 channels at
/// AVX2 and AVX-512, where it measured faster than the path it replaces.
///
/// Measured (`winograd_vs_direct/<shape>/dw-*`, batch 128, 2 threads, the loaded 2-core
/// AVX-512 VM; ms, Winograd vs the replaced path, two runs each):
/// - AVX-512 vs direct: 16 @ 32x32 5.09, 6.89 vs 4.73, 4.66 (slower: at 16 channels
///   the transforms cost about as much as the reduction); 32 @ 16x16 3.49, 3.84 vs 4.01,
///   4.17 (1.1x); 64 @ 8x8 3.81, 4.36 vs 5.26, 5.25 (1.2x to 1.4x).
/// - AVX2 vs direct (w_out >= 16) or im2col (below): 16 @ 32x32 7.88, 8.93 vs direct
///   10.40, 8.74 (no clear win, so not taken); 32 @ 16x16 6.75, 6.60 vs direct 7.58,
///   9.13 (1.1x to 1.4x); 64 @ 8x8 6.51, 6.23 vs im2col 8.13, 9.39 (1.25x to 1.5x).
/// - portable vs im2col: 24.7, 21.1, 15.9 ms vs 14.2, 12.8, 9.4 (1.7x slower). So: never.
///
/// F(4x4, 3x3) (`winograd4_kernels`, same bench, median of 3 interleaved runs, ms):
/// - AVX2 16 @ 32x32: 6.68 vs the direct kernel's 7.61 (minima 6.22 vs 7.09): taken
///   ([`uses_winograd4_weight_grad`]). 32 @ 16x16 5.02 vs F(2x2)'s 4.80 and 64 @ 8x8
///   5.46 vs 6.12 (minima 5.22 vs 5.03): no clear win, so F(2x2) stays.
/// - AVX-512: 16 @ 32x32 4.79 vs direct 4.33; 32 @ 16x16 3.52 vs 3.35; 64 @ 8x8 3.96
///   vs 3.28: never.
pub fn uses_winograd_weight_grad(level: Level, p: &Conv2dParams) -> bool {
    winograd::takes(p)
        && match forced_path() {
            Some("winograd" | "winograd4") => true,
            Some(_) => false,
            None => {
                level != Level::Portable && p.c_in.min(p.c_out) >= 32
                    || uses_winograd4_weight_grad(level, p)
            }
        }
}

/// Whether the f32 weight grad that [`uses_winograd_weight_grad`] sends to Winograd
/// takes F(4x4, 3x3): always under `ARBOR_CONV=winograd4`, never under the other forced
/// paths, else at AVX2's rules ([`rules_level`]) from 16 to 31 channels (see
/// [`uses_winograd_weight_grad`]).
pub fn uses_winograd4_weight_grad(level: Level, p: &Conv2dParams) -> bool {
    let channels = p.c_in.min(p.c_out);
    winograd::takes(p)
        && match forced_path() {
            Some("winograd4") => true,
            Some(_) => false,
            None => rules_level(level) == Level::Avx2 && (16..32).contains(&channels),
        }
}

/// Runs pass `pass` (0 forward, 1 input grad, 2 weight grad) of the active level's
/// Winograd kernels where [`uses_winograd`] (the weight grad: where
/// [`uses_winograd_weight_grad`]), else of its direct kernels where
/// [`uses_direct`]; `None` when `T` is not f32, neither applies, or the kernel declines
/// the geometry (the caller then takes the generic path).
pub(super) fn try_fast<T: Float>(
    a: &[T],
    b: &[T],
    p: &Conv2dParams,
    pass: usize,
) -> Option<Vec<T>> {
    let level = crate::cpu::simd::level();
    let (a, b) = (as_f32(a)?, as_f32(b)?);
    let winograd = match pass {
        2 => uses_winograd_weight_grad(level, p),
        _ => uses_winograd(level, p),
    };
    if winograd {
        let four = match pass {
            2 => uses_winograd4_weight_grad(level, p),
            _ => uses_winograd4(level, p),
        };
        let kernels = if four {
            winograd4_kernels(level)
        } else {
            winograd_kernels(level)
        };
        if let Some(out) = kernels[pass](a, b, p) {
            return from_f32(out);
        }
    }
    if !uses_direct(level) {
        return None;
    }
    from_f32(direct_kernels(level)[pass](a, b, p)?)
}
