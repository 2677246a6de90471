#!/usr/bin/env python3
"""Where a ResNet-32 step spends its time, by op family, from a `perf record` profile.

    cargo bench --bench train_step --no-run
    RAYON_NUM_THREADS=2 ARBOR_SIMD=avx2 perf record -F 199 --call-graph dwarf,12000 \\
        -o step.data target/release/deps/train_step-<hash> \\
        --bench resnet32_train_step --profile-time 16
    scripts/step_profile.py step.data [--skip 4]

Each sample goes to the first arbor kernel module on its call chain, leaf first
(`cpu::conv`, `cpu::batch_norm`, `cpu::fused` ...); samples with none are rayon's
(idle workers spinning or parking), the tape's or the allocator's. Page-fault handling
is counted inside the family that faulted, and shown beside it.

`--skip` drops the first seconds: the first steps fault in every activation buffer (with
transparent huge pages, a 2 MiB clear per fault), which is a third of a short profile's
samples and none of a steady step's.
"""
import argparse
import collections
import subprocess

# (family, substring of a frame's symbol), the first match on the chain from the leaf wins.
FAMILIES = [
    ("conv", "cpu::conv"),
    ("batch norm", "cpu::batch_norm"),
    ("loss", "cpu::loss"),
    ("add_relu", "cpu::fused"),
    ("SGD", "cpu::sgd"),
    ("pooling", "cpu::pool"),
    ("slice / pad (shortcut)", "cpu::index"),
    ("linear", "cpu::matmul"),
    ("reduce", "cpu::reduce"),
    ("elementwise (grad sums, relu grad)", "cpu::elementwise"),
    ("softmax", "cpu::softmax"),
    ("shape copies", "cpu::shape"),
]


def family(frames):
    for frame in frames:
        for name, pattern in FAMILIES:
            if pattern in frame:
                return name
    chain = " ".join(frames)
    if "tape::backward" in chain:
        return "tape bookkeeping"
    if any(k in chain for k in ("rayon", "crossbeam", "sched_yield", "futex")):
        return "rayon idle / sync"
    if any(k in chain for k in ("mi_", "malloc", "free", "memset", "memcpy")):
        return "allocation / copies"
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="perf.data recorded with --call-graph dwarf")
    ap.add_argument("--skip", type=float, default=4.0, help="seconds of warm-up to drop")
    args = ap.parse_args()
    out = subprocess.run(
        ["perf", "script", "-i", args.data, "-F", "time,ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout
    samples = [s.strip().split("\n") for s in out.split("\n\n") if s.strip()]
    if not samples:
        raise SystemExit(f"{args.data}: no samples")
    t0 = float(samples[0][0].split()[0].rstrip(":"))
    counts, faults = collections.Counter(), collections.Counter()
    for s in samples:
        if float(s[0].split()[0].rstrip(":")) - t0 < args.skip:
            continue
        frames = [line.strip().split(None, 1)[-1] for line in s[1:]]
        f = family(frames)
        counts[f] += 1
        faults[f] += any("exc_page_fault" in fr for fr in frames)
    total = sum(counts.values())
    print(f"{args.data}: {total} samples after the first {args.skip:g} s")
    for f, n in counts.most_common():
        print(f"{100 * n / total:6.1f}%  {f:36s} (page faults {100 * faults[f] / total:.1f}%)")


if __name__ == "__main__":
    main()
