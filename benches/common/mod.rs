//! What every bench prints first: the SIMD level its kernels run at (`ARBOR_SIMD`, or the
//! best the CPU has) and the instruction set of matrixmultiply's GEMM (which picks its
//! own; see `gemm_isa`), so that a table of figures names its tier.
use arbor::engine::cpu::matmul::gemm_isa;
use arbor::engine::cpu::simd::{avx512_on_256_bit_units, try_level, Level};

/// Prints `<bench>: simd level <name>, gemm <isa>` (and, on a Zen 4, that its AVX-512
/// runs on 256-bit units, which changes the conv dispatch), or the `ARBOR_SIMD` error and
/// exits with status 2 (before any kernel could run instructions the CPU lacks).
pub fn announce(bench: &str) {
    match try_level() {
        Ok(level) => {
            let halved = if level == Level::Avx512 && avx512_on_256_bit_units() {
                " (on 256-bit units: AVX2's Winograd rules)"
            } else {
                ""
            };
            eprintln!("{bench}: simd level {level}{halved}, gemm {}", gemm_isa())
        }
        Err(e) => {
            eprintln!("{bench}: {e}");
            std::process::exit(2);
        }
    }
}
