"""Draws docs/op-path.svg, the figure of docs/tour.md: the workspace's crates, then the
path of one op (`x.relu()`) down to its CPU loop and CUDA kernel, and back up through
`backward()`.

Plain Python writing SVG by hand, so it needs nothing installed. All text is monospace,
so its width is known in advance: before writing, the script checks that every label fits
its box and that no two boxes or labels overlap, and stops with the offender otherwise.

Run from the repository root: `python3 scripts/draw_tour_diagram.py`.
"""
import os
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 1080, 880
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SIZE = 11.5  # px; a monospace glyph is about 0.6 em wide
CHAR_W = SIZE * 0.62  # a little generous, so the fit check errs on the safe side
TITLE_H, LINE_H, PAD = 22, 15, 10
GAP = 26  # vertical room between boxes for an arrow

FORWARD, BACKWARD, CRATE = "#2b6cb0", "#c05621", "#4a5568"

shapes = []  # SVG elements, in drawing order
boxes = []  # (x, y, w, h, name) of every box, for the overlap check
labels = []  # (x, y, w, h, text) of every free-standing label


def box_height(lines):
    return TITLE_H + LINE_H * len(lines) + 6


def box(x, y, w, title, lines, colour, fill="#ffffff"):
    """A box with a bold title (a file or crate) and lines (functions); returns its rect."""
    h = box_height(lines)
    for text in [title] + lines:
        need = len(text) * CHAR_W + 2 * PAD
        if need > w:
            sys.exit(f"label {text!r} needs {need:.0f} px, its box is {w} px wide")
    boxes.append((x, y, w, h, title))
    shapes.append(
        f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" '
        f'stroke="{colour}" stroke-width="1.5"/>'
    )
    shapes.append(text_at(x + PAD, y + 16, title, weight="bold", colour=colour))
    for i, line in enumerate(lines):
        shapes.append(text_at(x + PAD, y + TITLE_H + 11 + LINE_H * i, line))
    return (x, y, w, h)


def text_at(x, y, text, weight="normal", colour="#1a202c", anchor="start", size=SIZE):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" font-size="{size}" '
        f'font-weight="{weight}" fill="{colour}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def label(x, y, text, colour, anchor="start", size=SIZE):
    """A free-standing label; `y` is its baseline."""
    w = len(text) * size * 0.62
    left = x - w / 2 if anchor == "middle" else x
    labels.append((left, y - size, w, size + 3, text))
    shapes.append(text_at(x, y, text, colour=colour, anchor=anchor, size=size))


def arrow(x1, y1, x2, y2, colour, dashed=False):
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    marker = "back" if colour == BACKWARD else ("crate" if colour == CRATE else "fwd")
    shapes.append(
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" '
        f'stroke-width="1.5"{dash} marker-end="url(#{marker})"/>'
    )


def down(upper, lower, colour, dx=0.5):
    """Arrow from the bottom of `upper` to the top of `lower`, at fraction `dx` across."""
    ux, uy, uw, uh = upper
    lx, ly, lw, _ = lower
    arrow(ux + uw * dx, uy + uh, lx + lw * dx, ly - 2, colour)


def up(lower, upper, colour):
    lx, ly, lw, _ = lower
    ux, uy, uw, uh = upper
    arrow(lx + lw / 2, ly, ux + uw / 2, uy + uh + 2, colour)


def column(x, y, w, specs, colour, fill="#ffffff"):
    """Boxes stacked downwards from `y`, each joined to the next by an arrow."""
    rects = []
    for title, lines in specs:
        r = box(x, y, w, title, lines, colour, fill)
        if rects:
            down(rects[-1], r, colour)
        rects.append(r)
        y += r[3] + GAP
    return rects


def overlaps(a, b):
    ax, ay, aw, ah = a[:4]
    bx, by, bw, bh = b[:4]
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def check_layout():
    items = boxes + labels
    for i, a in enumerate(items):
        x, y, w, h = a[:4]
        if x < 0 or y < 0 or x + w > WIDTH or y + h > HEIGHT:
            sys.exit(f"{a[4]!r} leaves the {WIDTH}x{HEIGHT} canvas")
        for b in items[i + 1 :]:
            if overlaps(a, b):
                sys.exit(f"{a[4]!r} overlaps {b[4]!r}")


def draw():
    shapes.append(
        text_at(20, 28, "arbor: the crates, and one op's path", weight="bold", size=15)
    )

    # ---- the crates --------------------------------------------------------------------
    label(20, 56, "Crates (arrow: depends on; the root also uses engine and cuda directly)", CRATE)
    crate_fill = "#f7fafc"
    y = 68
    root = box(20, y, 230, "arbor (root)", ["bins/repro, examples/", "tests/, benches/"], CRATE, crate_fill)
    models = box(290, y, 230, "arbor-models", ["models/src: resnet, train,", "loss::Criterion"], CRATE, crate_fill)
    engine = box(560, y, 230, "arbor-engine", ["Tensor, tape, ops/,", "cpu/, cuda/ backends"], CRATE, crate_fill)
    cuda = box(830, y, 230, "arbor-cuda", ["compile.rs (NVRTC),", "kernels/*.cu"], CRATE, crate_fill)
    mid = y + root[3] / 2
    arrow(250, mid, 288, mid, CRATE)
    arrow(520, mid, 558, mid, CRATE)
    arrow(790, mid, 828, mid, CRATE, dashed=True)
    label(809, y + root[3] + 16, "(optional: feature cuda)", CRATE, anchor="middle", size=10)

    # ---- one op ------------------------------------------------------------------------
    label(
        20,
        176,
        "One op: y = x.relu() forward (blue), then loss.backward() (orange, read upwards)",
        FORWARD,
    )
    col_a, col_b, col_c, w, wc = 20, 370, 740, 330, 320
    span = col_b + w - col_a
    top = box(col_a, 190, span, "engine/src/ops/elementwise.rs",
              ["Tensor::relu -> unary_op(UnaryOp::Relu)"], FORWARD)
    storage = box(col_a, top[1] + top[3] + GAP, span, "engine/src/storage.rs",
                  ["Storage::unary: forward! to the Cpu or the Cuda arm"], FORWARD)
    down(top, storage, FORWARD)
    split_y = storage[1] + storage[3] + 40

    cpu = column(col_a, split_y, w, [
        ("engine/src/cpu/mod.rs", ["impl BackendStorage for CpuStorage: unary"]),
        ("engine/src/cpu/elementwise.rs", ["unary -> map (rayon chunks past PAR_MIN)"]),
        ("engine/src/cpu/simd.rs", ["with_simd -> with_level(level())",
                                    "call_avx512 | call_avx2 | plain f()"]),
        ("engine/src/cpu/simd/level.rs", ["level(): ARBOR_SIMD, else Level::detected"]),
    ], FORWARD)
    gpu = column(col_b, split_y, w, [
        ("engine/src/cuda/mod.rs", ["impl BackendStorage for CudaStorage: unary"]),
        ("engine/src/cuda/elementwise.rs", ["unary -> ops::elementwise::unary_fwd"]),
        ("cuda/src/ops/elementwise.rs", ["unary_fwd -> map: function(&ELEMENTWISE)",
                                         "launch_builder .. launch(grid_for(n))"]),
        ("cuda/src/device.rs", ["GpuDevice::function -> module (per GPU)"]),
        ("cuda/src/compile.rs", ["ptx_for: memory -> disk cache -> NVRTC"]),
        ("cuda/kernels/elementwise.cu", ["relu_fwd_f32: a grid-stride loop"]),
    ], FORWARD, fill="#fffaf0")
    for rect, name in ((cpu[0], "Storage::Cpu"), (gpu[0], "Storage::Cuda")):
        arrow(rect[0] + rect[2] / 2, storage[1] + storage[3], rect[0] + rect[2] / 2, rect[1] - 2, FORWARD)
        label(rect[0] + rect[2] / 2 + 8, storage[1] + storage[3] + 24, name, FORWARD, size=10)

    record_y = gpu[-1][1] + gpu[-1][3] + 40
    record = box(col_a, record_y, span, "engine/src/tensor.rs -> engine/src/tape.rs",
                 ["Tensor::from_op -> tape::push: one Node on the thread's tape",
                  "Node { op: UnaryBackward { Relu, out }, inputs: [x or its shell] }"], FORWARD)
    down(cpu[-1], (col_a, record_y, w, 0), FORWARD)
    down(gpu[-1], (col_b, record_y, w, 0), FORWARD)

    # ---- backward, drawn bottom-up beside the forward path ------------------------------
    specs = [  # bottom first
        ("engine/src/tensor.rs", ["loss.backward() seeds ones,", "-> tape::backward(root, seed)"]),
        ("engine/src/tape.rs", ["backward: nodes in reverse order,", "grads: HashMap<TensorId, Tensor>"]),
        ("engine/src/ops/elementwise.rs", ["UnaryBackward::backward:", "out.binary_op(g, ReluGrad)"]),
        ("engine/src/storage.rs (again)", ["Storage::binary -> cpu binary, or", "cuda/kernels/elementwise.cu relu_grad_f32"]),
        ("engine/src/tape.rs, tensor.rs", ["leaf: accumulate_grad (x.grad())", "else: grads[id] = prev.add(g)"]),
    ]
    bottom = record[1] + record[3]
    rects = []
    for title, lines in specs:
        h = box_height(lines)
        r = box(col_c, bottom - h, wc, title, lines, BACKWARD, "#fffaf5")
        if rects:
            up(rects[-1], r, BACKWARD)
        rects.append(r)
        bottom = r[1] - GAP
    arrow(col_a + span, record[1] + record[3] / 2, col_c - 2, record[1] + record[3] / 2, BACKWARD, dashed=True)

    label(20, HEIGHT - 14,
          "Boxes name a file and the functions to read there; docs/tour.md walks them in order.",
          CRATE, size=10.5)


def main():
    draw()
    check_layout()
    markers = "".join(
        f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{colour}"/></marker>'
        for name, colour in (("fwd", FORWARD), ("back", BACKWARD), ("crate", CRATE))
    )
    svg = "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}">',
            f"<defs>{markers}</defs>",
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
            *shapes,
            "</svg>",
            "",
        ]
    )
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "op-path.svg")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(svg)
    print(f"wrote {os.path.normpath(out)}: {len(boxes)} boxes, {len(labels)} labels")


if __name__ == "__main__":
    main()
