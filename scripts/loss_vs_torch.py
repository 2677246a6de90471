#!/usr/bin/env python3
"""The fused ARB-Loss (forward + backward) against PyTorch eager and torch.compile, and
against a two-thread memcpy of the same bytes, alternated over several rounds per SIMD
level so that both sides see the same state of the host.

Why: the loss at 512 x 1000 takes about 0.1 ms, and on a shared VM one run of
scripts/bench-cpu.sh has read it at 113 and at 165 us an hour apart, with PyTorch timed
minutes away from it; a ratio from that cannot tell the host from the code. Here each
round times arbor's loss bench, then PyTorch (one worker per level, which compiles once
and is then asked for a timing each round), and the report is the median of the
per-round ratios with their range (as scripts/step_vs_torch.py does for the step).

  scripts/loss_vs_torch.py TORCH_PYTHON [--rounds 5] [--levels avx512,avx2] [--threads 2]

arbor: `cargo bench --bench loss` filtered to `arb_loss_fwd_bwd/<B>x<C>/(fused|memcpy_rayon)`
(build it first: `cargo bench --bench loss --no-run`). PyTorch: this file under
TORCH_PYTHON with `--worker`, pinned to the level's instruction set, timing the same
formulas as ../shared/bench/torch_anchor.py (eager: clamp, exp, the n_j / n_y weighted
sum; compiled: the log-sum-exp form, which has the same value and gradient).
Markdown on stdout; progress on stderr.
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = ((128, 10), (128, 100), (512, 1000), (512, 8142))

sys.path.insert(0, str(ROOT / "scripts"))
from simd_env import bench_rows, levels_of, round_parser  # noqa: E402
from step_vs_torch import TORCH_ISA  # noqa: E402


def torch_worker(threads):
    """Compiles once, then for each line on stdin prints {"BxC": [eager us, compiled us]}."""
    import time
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads)

    def arb_eager(z, y, n):
        e = z.clamp(-30.0, 30.0).exp()
        w = n.view(1, -1) / n[y].view(-1, 1)
        return -(e.gather(1, y.view(-1, 1)).squeeze(1) / (e * w).sum(1)).log().mean()

    def arb_stable(z, y, logn):
        u = z.clamp(-30.0, 30.0) + logn
        return (torch.logsumexp(u, 1) - u.gather(1, y.view(-1, 1)).squeeze(1)).mean()

    try:
        compiled = torch.compile(arb_stable)
    except Exception as e:  # no C++ compiler, or an unsupported platform
        print(f"torch.compile unavailable: {e}", file=sys.stderr)
        compiled = None

    cases = []
    for b, c in SIZES:
        z = torch.randn(b, c, requires_grad=True)
        y = torch.randint(0, c, (b,))
        n = torch.randint(1, 5000, (c,)).float()
        cases.append((f"{b}x{c}", z, y, n, n.log(), 200 if c < 2000 else 30))

    def seconds(f, reps, warm):
        for _ in range(warm):
            f()
        t = time.perf_counter()
        for _ in range(reps):
            f()
        return (time.perf_counter() - t) / reps

    def fwd_bwd(loss, z, *rest):
        def run():
            z.grad = None
            loss(z, *rest).backward()
        return run

    # Compile every size before the first round.
    if compiled is not None:
        for _, z, y, _, logn, _ in cases:
            seconds(fwd_bwd(compiled, z, y, logn), 1, 10)
    print("ready", flush=True)
    for _ in sys.stdin:
        out = {}
        for name, z, y, n, logn, reps in cases:
            eager = seconds(fwd_bwd(arb_eager, z, y, n), reps, 2) * 1e6
            comp = (seconds(fwd_bwd(compiled, z, y, logn), reps, 2) * 1e6
                    if compiled is not None else None)
            out[name] = [eager, comp]
        print(json.dumps(out), flush=True)


def arbor_times(level, threads):
    """arbor's {"BxC": [fused us, memcpy_rayon us]} from one run of the loss bench."""
    sizes = "|".join(f"{b}x{c}" for b, c in SIZES)
    args = [f"arb_loss_fwd_bwd/({sizes})/(fused|memcpy_rayon)$", "--warm-up-time", "1",
            "--measurement-time", "2", "--noplot"]
    rows = bench_rows("loss", level, threads, args, "loss_vs_torch.log")
    out = {}
    for b, c in SIZES:
        name = f"arb_loss_fwd_bwd/{b}x{c}"
        out[f"{b}x{c}"] = [rows[f"{name}/fused"][0] * 1e6, rows[f"{name}/memcpy_rayon"][0] * 1e6]
    return out


def cell(v, f):
    return f"{statistics.median(v):{f}} ({min(v):{f}}-{max(v):{f}})"


def main():
    ap = round_parser(__doc__)
    a = ap.parse_args()
    if a.worker:
        return torch_worker(a.threads)
    levels = levels_of(ap, a)
    print(f"# Fused ARB-Loss fwd+bwd, arbor vs PyTorch, {a.rounds} alternated rounds, "
          f"{a.threads} threads\n")
    print("| level | B x C | arbor us (median, range) | / memcpy_rayon | eager us | "
          "eager / arbor | compiled us | compiled / arbor |")
    print("|---|---|---|---|---|---|---|---|")
    for level in levels:
        env = dict(os.environ, **TORCH_ISA[level])
        cmd = [a.python, __file__, "--worker", "--threads", str(a.threads)]
        worker = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        if worker.stdout.readline().strip() != "ready":
            sys.exit(f"the PyTorch worker for {level} did not start (see its stderr above)")
        got = {f"{b}x{c}": {k: [] for k in ("arbor", "memcpy", "eager", "compiled")}
               for b, c in SIZES}
        for r in range(a.rounds):
            ours = arbor_times(level, a.threads)
            worker.stdin.write("go\n")
            worker.stdin.flush()
            theirs = json.loads(worker.stdout.readline())
            for size, d in got.items():
                d["arbor"].append(ours[size][0])
                d["memcpy"].append(ours[size][1])
                d["eager"].append(theirs[size][0])
                if theirs[size][1] is not None:
                    d["compiled"].append(theirs[size][1])
            line = ", ".join(f"{s} {ours[s][0]:.1f}/{theirs[s][0]:.0f}us" for s in got)
            print(f"{level} round {r + 1} (arbor/eager): {line}", file=sys.stderr)
        worker.stdin.close()
        worker.wait()
        for size, d in got.items():
            per_round = lambda other: [o / x for o, x in zip(d[other], d["arbor"])]
            mem = [x / m for x, m in zip(d["arbor"], d["memcpy"])]
            comp = (f"{cell(d['compiled'], '.1f')} | {cell(per_round('compiled'), '.1f')}"
                    if d["compiled"] else "n/a | n/a")
            print(f"| {level} | {size} | {cell(d['arbor'], '.1f')} | {cell(mem, '.2f')} | "
                  f"{cell(d['eager'], '.1f')} | {cell(per_round('eager'), '.1f')} | {comp} |")


if __name__ == "__main__":
    main()
