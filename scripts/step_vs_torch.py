#!/usr/bin/env python3
"""ResNet-32 at batch 128, arbor against PyTorch, alternated over several rounds per SIMD
level so that both sides see the same state of the host.

Why: on a shared VM one run of scripts/bench-cpu.sh times each side once, and the host
can move 30-40% between those two moments (PyTorch's own AVX2 step has read 179 and 282
img/s in one run), which a ratio cannot tell from a change in the code. Here each round
times arbor's step and evaluation, then PyTorch's, and the report is the median of the
per-round ratios with their range.

  scripts/step_vs_torch.py TORCH_PYTHON [--rounds 5] [--levels avx512,avx2] [--threads 2]

arbor: `cargo bench --bench train_step` filtered to `resnet32_train_step/batch128` and
`resnet32_eval/batch128` (build it first: `cargo bench --bench train_step --no-run`).
PyTorch: this file run again under TORCH_PYTHON with `--worker`, pinned to the level's
instruction set as scripts/bench-cpu.sh pins it, on the same model, loss, optimiser and
input as ../shared/bench/torch_anchor.py. Markdown on stdout; progress on stderr.
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from simd_env import bench_rows, levels_of, round_parser  # noqa: E402

# The environment that keeps ATen, oneDNN and MKL to one instruction set.
TORCH_ISA = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "portable": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                 "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def torch_worker(threads, reps):
    """Times PyTorch's train step and eval forward; prints {"train": img/s, "eval": img/s}."""
    import time
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(threads)

    def conv_bn(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))

    class Residual(nn.Module):
        """Two 3x3 convs; the shortcut subsamples and zero-pads channels when the shape changes."""

        def __init__(self, cin, cout, stride):
            super().__init__()
            self.first, self.second = conv_bn(cin, cout, stride), conv_bn(cout, cout, 1)
            self.extra = (cout - cin) // 2 if stride != 1 or cin != cout else None

        def forward(self, x):
            shortcut = x
            if self.extra is not None:
                shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra, self.extra))
            return F.relu(self.second(F.relu(self.first(x))) + shortcut)

    blocks, cin = [], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(5):
            blocks.append(Residual(cin, cout, stride if i == 0 else 1))
            cin = cout
    model = nn.Sequential(conv_bn(3, 16, 1), nn.ReLU(), *blocks, nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    counts = torch.tensor([int(5000 * 0.01 ** (i / 9)) for i in range(10)], dtype=torch.float32)
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))

    def arb_loss(z):  # ARB-Loss as the anchor writes it: repulsion weighted by n_j / n_y
        e = z.clamp(-30.0, 30.0).exp()
        w = counts.view(1, -1) / counts[y].view(-1, 1)
        return -(e.gather(1, y.view(-1, 1)).squeeze(1) / (e * w).sum(1)).log().mean()

    def step():
        opt.zero_grad()
        arb_loss(model(x)).backward()
        opt.step()

    def evaluate():
        with torch.no_grad():
            model(x)

    def rate(f):
        for _ in range(2):
            f()
        t = time.perf_counter()
        for _ in range(reps):
            f()
        return 128 * reps / (time.perf_counter() - t)

    train = rate(step)
    model.eval()
    print(json.dumps({"train": train, "eval": rate(evaluate)}))


def arbor_rates(level, threads):
    """arbor's {"train": img/s, "eval": img/s} from one run of the train_step bench."""
    rows = bench_rows("train_step", level, threads, ["resnet32_(train_step|eval)/batch128$"],
                      "step_vs_torch.log")
    return {"train": rows["resnet32_train_step/batch128"][1],
            "eval": rows["resnet32_eval/batch128"][1]}


def torch_rates(python, level, threads, reps):
    env = dict(os.environ, **TORCH_ISA[level])
    cmd = [python, __file__, "--worker", "--threads", str(threads), "--reps", str(reps)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = round_parser(__doc__)
    ap.add_argument("--reps", type=int, default=10, help="PyTorch steps timed per round")
    a = ap.parse_args()
    if a.worker:
        return torch_worker(a.threads, a.reps)
    levels = levels_of(ap, a)
    print(f"# ResNet-32 batch 128, arbor vs PyTorch, {a.rounds} alternated rounds, "
          f"{a.threads} threads\n")
    print("| level | what | arbor img/s (median, range) | PyTorch img/s (median, range) "
          "| arbor / PyTorch per round (median, range) |")
    print("|---|---|---|---|---|")
    for level in levels:
        got = {w: {"arbor": [], "torch": []} for w in ("train", "eval")}
        for r in range(a.rounds):
            ours, theirs = arbor_rates(level, a.threads), torch_rates(a.python, level,
                                                                     a.threads, a.reps)
            for w in got:
                got[w]["arbor"].append(ours[w])
                got[w]["torch"].append(theirs[w])
            print(f"{level} round {r + 1}: arbor {ours['train']:.0f}/{ours['eval']:.0f}, "
                  f"torch {theirs['train']:.0f}/{theirs['eval']:.0f} img/s (train/eval)",
                  file=sys.stderr)
        for w, d in got.items():
            ratios = [x / y for x, y in zip(d["arbor"], d["torch"])]
            cell = lambda v, f: (f"{statistics.median(v):{f}} ({min(v):{f}}-{max(v):{f}})")
            print(f"| {level} | {w} | {cell(d['arbor'], '.0f')} | {cell(d['torch'], '.0f')} "
                  f"| {cell(ratios, '.2f')} |")


if __name__ == "__main__":
    main()
