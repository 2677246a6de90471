//! Every SIMD kernel's intrinsics are inlined into its level's `#[target_feature]` code.
//!
//! Why a test: an intrinsic reached through anything compiled without the level's
//! features (a closure, a function item called through an `Fn` bound, a helper not marked
//! `#[inline(always)]`) becomes a real call of a one-instruction function. Nothing fails,
//! the results are the same bits, and the kernel gets several times slower: a refactor of
//! the Winograd tile transforms once made the AVX2 16@32² forward 3.4x slower that way
//! and no other test noticed. Such a call leaves the intrinsic in the binary as a
//! function of its own (`core::core_arch::x86::fma::_mm256_fmadd_ps`), which `nm` lists.
//!
//! The test runs the conv kernels of every level this CPU has and the ops with SIMD loops
//! (batch norm, add + ReLU, the fused loss) so that their code is linked into this test
//! binary, then reads the binary's symbols. Only optimised builds inline at all, so a
//! debug build skips with a reason.
use arbor_engine::backend::Conv2dParams;
use arbor_engine::cpu::conv::{direct_kernels, im2col_kernels, winograd_kernels};
use arbor_engine::cpu::simd::Level;
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{arb_loss, ArbOptions, Target};
use arbor_engine::Tensor;
use std::process::Command;

/// `core::core_arch` modules the engine's kernels use. CPU-feature detection (`xsave`,
/// `cpuid`) is meant to be a call and is not listed.
const KERNEL_ISAS: [&str; 7] = ["sse", "sse2", "sse41", "avx", "avx2", "fma", "avx512f"];

/// Runs every kernel family once on small inputs, so that the linker keeps them.
fn exercise_kernels() {
    let mut r = SplitMix::new(11);
    let mut values =
        |n: usize| -> Vec<f32> { r.vec(n, -1.0, 1.0).iter().map(|&v| v as f32).collect() };
    // Winograd takes stride-1 3x3 from 16 channels at AVX2, 32 at AVX-512: 32 covers both.
    for (c, stride) in [(32, 1), (16, 2)] {
        let p = Conv2dParams {
            batch: 2,
            c_in: c,
            h_in: 8,
            w_in: 8,
            c_out: c,
            kh: 3,
            kw: 3,
            stride: (stride, stride),
            padding: (1, 1),
        };
        let (x, w) = (values(2 * c * 64), values(c * c * 9));
        let dy = values(2 * c * p.h_out() * p.w_out());
        let mut kernels = vec![im2col_kernels()];
        for level in Level::supported() {
            kernels.push(direct_kernels(level));
            kernels.push(winograd_kernels(level));
        }
        for k in kernels {
            for (pass, (a, b)) in [(&x, &w), (&dy, &w), (&dy, &x)].into_iter().enumerate() {
                std::hint::black_box(k[pass](a, b, &p));
            }
        }
    }
    // The ops dispatch on the level chosen at run time, so one call links every level's.
    let x = Tensor::from_vec(
        values(2 * 4 * 9).iter().map(|&v| v as f64).collect(),
        [2, 4, 3, 3],
    )
    .unwrap()
    .into_parameter();
    let c = |v: f64| Tensor::from_vec(vec![v; 4], [4]).unwrap();
    let y = x
        .batch_norm2d_relu(&c(1.0), &c(0.0), &c(0.0), &c(1.0), true, 0.1, 1e-5)
        .and_then(|y| y.add_relu(&x))
        .and_then(|y| y.reshape([2, 36]))
        .unwrap();
    let counts: Vec<f64> = (1..=36).map(|n| n as f64).collect();
    let loss = arb_loss(
        &y,
        &Target::Hard(vec![0, 5]),
        &counts,
        &ArbOptions::default(),
    )
    .unwrap();
    loss.backward().unwrap();
}

#[test]
fn no_intrinsic_is_left_as_a_call() {
    if cfg!(debug_assertions) {
        eprintln!("skipped: only optimised builds inline intrinsics (run with --release)");
        return;
    }
    exercise_kernels();
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("nm")
        .args(["-C", "--defined-only"])
        .arg(&exe)
        .output()
        .expect("this test reads the binary's symbols with `nm` (binutils)");
    assert!(
        out.status.success(),
        "nm {}: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let symbols = String::from_utf8_lossy(&out.stdout);
    let calls: Vec<&str> = symbols
        .lines()
        .filter_map(|line| line.split_once("core::core_arch::x86::").map(|(_, f)| f))
        .filter(|f| {
            KERNEL_ISAS
                .iter()
                .any(|isa| f.starts_with(&format!("{isa}::")))
        })
        .collect();
    assert!(
        symbols.contains("arbor_engine"),
        "nm listed no arbor_engine symbol in {}: is the binary stripped?",
        exe.display()
    );
    assert!(
        calls.is_empty(),
        "intrinsics compiled as functions of their own (so every use is a call, not an \
         instruction): {calls:?}. Something between a `#[target_feature]` entry and these \
         intrinsics is compiled without the level's features: a closure, a function item \
         called through `Fn`, or a helper without `#[inline(always)]`."
    );
}
