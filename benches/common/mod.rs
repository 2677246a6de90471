//! What every bench prints first: the SIMD level its kernels run at (`ARBOR_SIMD`, or the
//! best the CPU has) and the instruction set of matrixmultiply's GEMM (which picks its
//! own; see `gemm_isa`), so that a table of figures names its tier.
use arbor::engine::cpu::matmul::gemm_isa;
use arbor::engine::cpu::simd::try_level;

/// Prints `<bench>: simd level <name>, gemm <isa>`, or the `ARBOR_SIMD` error and exits
/// with status 2 (before any kernel could run instructions the CPU lacks).
pub fn announce(bench: &str) {
    match try_level() {
        Ok(level) => eprintln!("{bench}: simd level {level}, gemm {}", gemm_isa()),
        Err(e) => {
            eprintln!("{bench}: {e}");
            std::process::exit(2);
        }
    }
}
