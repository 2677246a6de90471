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


LEVELS = tuple(GEMM_FEATURES)


def round_parser(doc, torch=True):
    """The arguments every alternated-rounds script takes: --rounds, --levels, --threads,
    and with `torch` the Python that has torch (and the hidden --worker of its worker)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if torch:
        ap.add_argument("python", nargs="?", help="a Python with torch installed")
        ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=5 if torch else 3)
    ap.add_argument("--levels", default="avx512,avx2")
    ap.add_argument("--threads", type=int, default=2)
    return ap


def levels_of(ap, a):
    """The levels of --levels, after the checks that end the run with a usage error: a
    known level each, and (for a torch script) the Python given."""
    if getattr(a, "worker", None) is False and not a.python:
        ap.error("give the Python that has torch, e.g. ~/torch-venv/bin/python")
    levels = a.levels.split(",")
    for level in levels:
        if level not in LEVELS:
            ap.error(f"--levels: unknown level {level!r} ({', '.join(LEVELS)})")
    return levels


def bench_rows(bench, level, threads, args, log=None):
    """`cargo bench --bench <bench> -- <args>` at `level` (pinned as `cargo_env` pins
    it): criterion's rows, {name: [seconds, rate or None]}; the raw output appended to
    bench-results/<log> when given."""
    import subprocess

    from bench_summary import criterion_text

    cmd = ["cargo", "bench", "-q", "--bench", bench, "--", *args]
    text = subprocess.run(cmd, cwd=ROOT, env=cargo_env(level, threads), check=True,
                          capture_output=True, text=True).stdout
    if log:
        path = ROOT / "bench-results" / log
        path.parent.mkdir(exist_ok=True)
        with path.open("a") as f:
            f.write(f"== {level}\n{text}")
    return criterion_text(text)


def env_args(level):
    """`cargo_env`'s pin as arguments to env(1), for scripts/bench-cpu.sh: `-u MMTEST_FEATURE`
    at AVX-512, else the two assignments (relative target directory, as cargo runs from
    the repository root)."""
    features = GEMM_FEATURES[level]
    if not features:
        return "-u MMTEST_FEATURE"
    return f"MMTEST_FEATURE={features} CARGO_TARGET_DIR=target/simd-{level}"


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2 or sys.argv[1] not in LEVELS:
        sys.exit(f"usage: simd_env.py LEVEL  (one of {', '.join(LEVELS)})")
    print(env_args(sys.argv[1]))
