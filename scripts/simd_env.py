"""The environment that pins every kernel of a SIMD level for a `cargo bench` run,
matrixmultiply's GEMM included.

ARBOR_SIMD pins arbor's own kernels at run time, but matrixmultiply (the GEMM under the
im2col convolutions, the linear layers and the sgemm-1024 bench) picks its instruction
set itself: AVX-512 wherever the CPU has it, through its default `avx512` feature (which
nalgebra's dependency on it turns on for the whole build in any case). On an AVX-512
host, ARBOR_SIMD=avx2 therefore used to time an AVX-512 sgemm (on a Zen 5: 366 GFLOP/s
against 196 with its AVX2 kernel, side by side) and run the im2col passes with it.
matrixmultiply's one switch is a testing hook read at compile time, MMTEST_FEATURE (the
CPU features it may use; not a stable interface), so a level below AVX-512 gets a build
of its own: MMTEST_FEATURE set, in a target directory of its own, so that alternating
levels does not rebuild the workspace each time (the first run of a level builds it).
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The features matrixmultiply may use at each level (None: whatever the CPU has).
GEMM_FEATURES = {"avx512": None, "avx2": "avx,avx2,fma", "portable": "sse2"}


def cargo_env(level, threads):
    """os.environ with ARBOR_SIMD, RAYON_NUM_THREADS and matrixmultiply's pin for `level`."""
    env = dict(os.environ, ARBOR_SIMD=level, RAYON_NUM_THREADS=str(threads))
    features = GEMM_FEATURES[level]
    env.pop("MMTEST_FEATURE", None)
    if features:
        env["MMTEST_FEATURE"] = features
        env["CARGO_TARGET_DIR"] = str(ROOT / "target" / f"simd-{level}")
    return env
