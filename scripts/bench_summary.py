"""Turns the outputs of scripts/bench-cpu.sh into one markdown table of ratios per SIMD
level: bench-results/<level>/{engine,loss,train_step,torch}.txt -> markdown on stdout.

Criterion prints a bench's name, then `time: [lo mid hi]` and `thrpt: [lo mid hi]`; the
middle value is the estimate used here."""
import json
import platform
import re
import sys
from pathlib import Path

UNITS = {"ps": 1e-12, "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
RATE = {"elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6, "Gelem/s": 1e9}


def criterion(path):
    """{bench name: (seconds, throughput in elements/s or None)} from a saved output."""
    return criterion_text(path.read_text()) if path.exists() else {}


def criterion_text(text):
    """{bench name: (seconds, throughput in elements/s or None)} from criterion's output."""
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s*(time:.*)?$", line)
        if m and not line.startswith(" ") and "time:" not in line.split()[0]:
            name = m.group(1)
        t = re.search(r"time:\s+\[\S+\s+\S+\s+(\S+)\s+(\S+)", line)
        # (criterion's "change:" lines against an earlier run also say time: [..%]: skip)
        if t and name and t.group(2) in UNITS:
            out[name] = [float(t.group(1)) * UNITS[t.group(2)], None]
        r = re.search(r"thrpt:\s+\[\S+\s+\S+\s+(\S+)\s+(\S+)", line)
        if r and name in out and r.group(2) in RATE:
            out[name][1] = float(r.group(1)) * RATE[r.group(2)]
    return out


def torch(path):
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def cpu():
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                keep = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw",
                        "avx512dq", "avx512_vnni", "amx_tile")
                flags = " ".join(f for f in line.split(":", 1)[1].split() if f in keep)
                break
    except OSError:
        pass
    return model, flags


# The fused loss's sizes in the loss bench and the PyTorch anchor alike.
LOSS_SIZES = [(128, 10), (128, 100), (512, 1000), (512, 8142)]


def fmt(v, digits=2):
    return "—" if v is None else f"{v:.{digits}f}"


def main():
    root, levels = Path(sys.argv[1]), sys.argv[2:]
    model, flags = cpu()
    print(f"# CPU benchmarks\n\nCPU: **{model}**  \nSIMD flags: `{flags}`\n")
    print("Ratios within one level come from one run (`scripts/bench-cpu.sh`); "
          "arbor `ARBOR_SIMD=<level>`, PyTorch pinned to the same instruction set.\n")
    head = ["level", "sgemm-1024 GFLOP/s", "conv fwd+bwd / sgemm (each ResNet-32 shape)",
            "train img/s", "vs torch", "eval img/s", "vs torch", "ARB-Loss 512x8142 µs",
            "vs eager", "vs compile", "/ memcpy_rayon",
            "ARB-Loss vs eager, each size", "vs compile, each size"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for level in levels:
        d = root / level
        eng = criterion(d / "engine.txt")
        eng.update(criterion(d / "train_step.txt"))
        eng.update(criterion(d / "loss.txt"))
        tor = torch(d / "torch.txt")
        sg = eng.get("sgemm/1024", [None, None])[1]
        convs = [(k.split("/")[2], v[1]) for k, v in eng.items()
                 if k.startswith("conv2d/fwd_bwd/")]
        conv = ", ".join(f"{n} {100 * r / sg:.0f}%" for n, r in convs if r and sg) or "—"
        train = eng.get("resnet32_train_step/batch128", [None, None])[1]
        ev = eng.get("resnet32_eval/batch128", [None, None])[1]
        pick = lambda what, **kw: next((r for r in tor if r.get("what") == what
                                        and all(r.get(k) == v for k, v in kw.items())), {})
        t_train = pick("resnet32_train_step", classes=10).get("img_per_s")
        t_eval = pick("resnet32_eval", classes=10).get("img_per_s")
        loss = eng.get("arb_loss_fwd_bwd/512x8142/fused", [None])[0]
        copy = eng.get("arb_loss_fwd_bwd/512x8142/memcpy_rayon", [None])[0]
        t_eager = pick("arb_loss_fwd_bwd", B=512, C=8142).get("us")
        t_comp = pick("arb_loss_fwd_bwd_compiled", B=512, C=8142).get("us")
        ratio = lambda a, b: a / b if a and b else None
        us = loss * 1e6 if loss else None
        row = [level, fmt(sg / 1e9 if sg else None, 0), conv, fmt(train, 0),
               fmt(ratio(train, t_train)), fmt(ev, 0), fmt(ratio(ev, t_eval)), fmt(us, 0),
               fmt(ratio(t_eager, us), 1), fmt(ratio(t_comp, us), 1),
               fmt(ratio(loss, copy))]
        # The loss against PyTorch at each of the anchor's sizes (the target is every size).
        eager_each, comp_each = [], []
        for b, c in LOSS_SIZES:
            ours = eng.get(f"arb_loss_fwd_bwd/{b}x{c}/fused", [None])[0]
            ours = ours * 1e6 if ours else None
            for out, what in ((eager_each, "arb_loss_fwd_bwd"),
                              (comp_each, "arb_loss_fwd_bwd_compiled")):
                out.append(f"{b}x{c} {fmt(ratio(pick(what, B=b, C=c).get('us'), ours), 1)}")
        row += [", ".join(eager_each), ", ".join(comp_each)]
        print("| " + " | ".join(row) + " |")
    print("\nThe conv column is the engine's `conv2d/fwd_bwd` (through the tape); "
          "`conv_kernels` in `engine.txt` has each pass alone, per level and on im2col.")


if __name__ == "__main__":
    main()
