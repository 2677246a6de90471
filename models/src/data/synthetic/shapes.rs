//! The shape families of `synthetic-lt`: each a coverage mask with two variants that
//! differ in one detail.
//!
//! Masks are evaluated per pixel in the shape's own frame: `u`, `v` in units of the
//! shape's half-size (the shape spans roughly [-1, 1]), `x_px`, `y_px` in pixels for
//! textures whose period must not change with scale. Edges are antialiased over one
//! pixel, which keeps thin details visible at 32x32.

/// A pixel seen from the shape's frame.
pub(super) struct Point {
    /// Horizontal offset from the centre, in half-sizes.
    pub u: f32,
    /// Vertical offset from the centre (down is positive), in half-sizes.
    pub v: f32,
    /// Horizontal offset in pixels.
    pub x_px: f32,
    /// Vertical offset in pixels, shifted by a random texture phase.
    pub y_px: f32,
    /// One pixel in half-sizes, the antialiasing width.
    pub pixel: f32,
}

/// A shape family: names of its two variants and its coverage mask `(variant, point)`.
pub(super) struct Family {
    pub names: [&'static str; 2],
    pub mask: fn(usize, &Point) -> f32,
}

/// Ordered so the first five families (used by the default 10 classes) mix outlines,
/// strokes, textures and filled shapes.
pub(super) const FAMILIES: [Family; 10] = [
    Family {
        names: ["ring", "bullseye"],
        mask: ring,
    },
    Family {
        names: ["checkerboard", "grid"],
        mask: checker_or_grid,
    },
    Family {
        names: ["plus", "tee"],
        mask: plus_or_tee,
    },
    Family {
        names: ["wide-stripes", "narrow-stripes"],
        mask: stripes,
    },
    Family {
        names: ["triangle-up", "triangle-down"],
        mask: triangle,
    },
    Family {
        names: ["square-outline", "crossed-square"],
        mask: square_outline,
    },
    Family {
        names: ["two-blobs", "three-blobs"],
        mask: blobs,
    },
    Family {
        names: ["disc", "filled-square"],
        mask: disc_or_square,
    },
    Family {
        names: ["bar", "double-bar"],
        mask: bars,
    },
    Family {
        names: ["saltire", "circled-saltire"],
        mask: saltire,
    },
];

/// Coverage of a stroke whose centre line is `distance` away, half-width `half_width`.
pub(super) fn stroke(distance: f32, half_width: f32, pixel: f32) -> f32 {
    ((half_width - distance) / pixel + 0.5).clamp(0.0, 1.0)
}

/// Coverage of a filled region with signed distance `signed` (negative inside).
fn fill(signed: f32, pixel: f32) -> f32 {
    (0.5 - signed / pixel).clamp(0.0, 1.0)
}

/// Distance from `p` to the segment `a`-`b`.
pub(super) fn segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (ab, ap) = ([b[0] - a[0], b[1] - a[1]], [p[0] - a[0], p[1] - a[1]]);
    let len2 = ab[0] * ab[0] + ab[1] * ab[1];
    let t = if len2 > 0.0 {
        ((ap[0] * ab[0] + ap[1] * ab[1]) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (ap[0] - t * ab[0]).hypot(ap[1] - t * ab[1])
}

/// Signed distance to an axis-aligned box of half extents `half` centred at `centre`.
fn box_distance(u: f32, v: f32, centre: [f32; 2], half: [f32; 2]) -> f32 {
    let q = [
        (u - centre[0]).abs() - half[0],
        (v - centre[1]).abs() - half[1],
    ];
    let outside = q[0].max(0.0).hypot(q[1].max(0.0));
    outside + q[0].max(q[1]).min(0.0)
}

/// Coverage of the union of strokes along `segments`.
fn strokes(p: &Point, segments: &[([f32; 2], [f32; 2])], half_width: f32) -> f32 {
    segments
        .iter()
        .map(|&(a, b)| stroke(segment_distance([p.u, p.v], a, b), half_width, p.pixel))
        .fold(0.0, f32::max)
}

/// The square patch textures are drawn in.
fn patch(p: &Point) -> f32 {
    fill(box_distance(p.u, p.v, [0.0, 0.0], [0.85, 0.85]), p.pixel)
}

fn ring(variant: usize, p: &Point) -> f32 {
    let r = p.u.hypot(p.v);
    let outline = stroke((r - 0.7).abs(), 0.13, p.pixel);
    if variant == 0 {
        outline
    } else {
        outline.max(fill(r - 0.2, p.pixel))
    }
}

fn checker_or_grid(variant: usize, p: &Point) -> f32 {
    let texture = if variant == 0 {
        let cell = (p.x_px / 4.0).floor() + (p.y_px / 4.0).floor();
        cell.rem_euclid(2.0)
    } else {
        let to_line = |t: f32| (t - 6.0 * (t / 6.0).round()).abs();
        stroke(to_line(p.x_px).min(to_line(p.y_px)), 0.75, 1.0)
    };
    texture * patch(p)
}

fn plus_or_tee(variant: usize, p: &Point) -> f32 {
    let segments = if variant == 0 {
        [([-0.85, 0.0], [0.85, 0.0]), ([0.0, -0.85], [0.0, 0.85])]
    } else {
        [([-0.85, -0.7], [0.85, -0.7]), ([0.0, -0.7], [0.0, 0.85])]
    };
    strokes(p, &segments, 0.14)
}

fn stripes(variant: usize, p: &Point) -> f32 {
    let period = if variant == 0 { 6.0 } else { 4.0 };
    let wave = 0.5 + 0.5 * (std::f32::consts::TAU * p.y_px / period).cos();
    wave * patch(p)
}

fn triangle(variant: usize, p: &Point) -> f32 {
    // Apex up at v = -0.66, base at v = 0.65, about equilateral; variant 1 is it upside
    // down. The edges' outward normals give a signed distance (exact inside, close
    // enough outside for antialiasing).
    let v = if variant == 0 { p.v } else { -p.v };
    let slanted = 0.87 * p.u.abs() - 0.5 * v - 0.33;
    fill(slanted.max(v - 0.65), p.pixel)
}

fn square_outline(variant: usize, p: &Point) -> f32 {
    let outline = stroke((p.u.abs().max(p.v.abs()) - 0.75).abs(), 0.12, p.pixel);
    if variant == 0 {
        outline
    } else {
        let diagonals = [
            ([-0.75, -0.75], [0.75, 0.75]),
            ([-0.75, 0.75], [0.75, -0.75]),
        ];
        outline.max(strokes(p, &diagonals, 0.1))
    }
}

fn blobs(variant: usize, p: &Point) -> f32 {
    let (centres, radius): (&[f32], f32) = if variant == 0 {
        (&[-0.5, 0.5], 0.32)
    } else {
        (&[-0.62, 0.0, 0.62], 0.26)
    };
    centres
        .iter()
        .map(|&cu| fill((p.u - cu).hypot(p.v) - radius, p.pixel))
        .fold(0.0, f32::max)
}

fn disc_or_square(variant: usize, p: &Point) -> f32 {
    let signed = if variant == 0 {
        p.u.hypot(p.v) - 0.75
    } else {
        box_distance(p.u, p.v, [0.0, 0.0], [0.66, 0.66])
    };
    fill(signed, p.pixel)
}

fn bars(variant: usize, p: &Point) -> f32 {
    let signed = if variant == 0 {
        box_distance(p.u, p.v, [0.0, 0.0], [0.85, 0.2])
    } else {
        let top = box_distance(p.u, p.v, [0.0, -0.4], [0.85, 0.15]);
        top.min(box_distance(p.u, p.v, [0.0, 0.4], [0.85, 0.15]))
    };
    fill(signed, p.pixel)
}

fn saltire(variant: usize, p: &Point) -> f32 {
    let cross = strokes(
        p,
        &[([-0.7, -0.7], [0.7, 0.7]), ([-0.7, 0.7], [0.7, -0.7])],
        0.13,
    );
    if variant == 0 {
        cross
    } else {
        cross.max(stroke((p.u.hypot(p.v) - 0.9).abs(), 0.1, p.pixel))
    }
}
