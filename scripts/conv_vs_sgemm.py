#!/usr/bin/env python3
"""Each ResNet-32 conv shape (forward + backward through the tape) as a share of the same
level's sgemm-1024, with the levels alternated over several rounds.

Why: issue 9's conv target is a ratio of two benches, and on a shared VM one run of
scripts/bench-cpu.sh put the stride-2 convs at AVX2 at 33-34% of a sgemm that read 366
GFLOP/s, where three alternated rounds minutes later read 46-60% of 252-331. Here each
round runs `sgemm/1024` and `conv2d/fwd_bwd` back to back in one criterion run per level,
and the report is the median of the per-round shares with their range.

  scripts/conv_vs_sgemm.py [--rounds 3] [--levels avx512,avx2] [--threads 2]

Build first: `cargo bench --bench engine --no-run`. Markdown on stdout.
"""
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from simd_env import bench_rows, levels_of, round_parser  # noqa: E402


def rates(level, threads):
    """{bench name: GFLOP/s} of sgemm-1024 and each conv shape, from one criterion run."""
    args = ["sgemm/1024$|conv2d/fwd_bwd", "--warm-up-time", "1", "--measurement-time", "2",
            "--noplot"]
    rows = bench_rows("engine", level, threads, args)
    return {name: rate / 1e9 for name, (_, rate) in rows.items() if rate}


def main():
    ap = round_parser(__doc__, torch=False)
    a = ap.parse_args()
    levels = levels_of(ap, a)
    got = {level: [] for level in levels}
    for r in range(a.rounds):
        for level in levels:
            got[level].append(rates(level, a.threads))
            print(f"round {r + 1} {level}: sgemm {got[level][-1].get('sgemm/1024', 0):.0f} "
                  "GFLOP/s", file=sys.stderr)
    print(f"# conv fwd+bwd / sgemm-1024, {a.rounds} alternated rounds, {a.threads} threads\n")
    print("| level | sgemm-1024 GFLOP/s | shape | conv GFLOP/s | share of sgemm (median, range) |")
    print("|---|---|---|---|---|")
    for level, runs in got.items():
        sgemm = [run["sgemm/1024"] for run in runs]
        shapes = [n for n in runs[0] if n.startswith("conv2d/fwd_bwd/")]
        for shape in shapes:
            conv = [run[shape] for run in runs]
            share = [100 * c / s for c, s in zip(conv, sgemm)]
            cell = lambda v, f: f"{statistics.median(v):{f}} ({min(v):{f}}-{max(v):{f}})"
            print(f"| {level} | {cell(sgemm, '.0f')} | {shape.split('/')[-1]} | "
                  f"{cell(conv, '.0f')} | {cell(share, '.0f')}% |")


if __name__ == "__main__":
    main()
