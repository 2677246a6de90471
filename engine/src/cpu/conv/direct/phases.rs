//! The input gradient of a strided convolution, split into its stride phases.
//!
//! Along an axis with stride `s` and padding `pad`, input `i` sits at padded coordinate
//! `u = i + pad`, and output `o` reads `u = s*o + k` through tap `k`: pixel `u = s*a + r`
//! only ever meets taps `k = r + s*j`, through `dy[a - j]`. So the pixels of one residue
//! `r` (every `s`-th row or column of `dx`, a *phase*) form a stride-1 correlation of `dy`
//! with the taps `r, r + s, ...` of the kernel: for 3x3 and stride 2 the four phases of
//! `dx` take sub-kernels of 1x1, 1x2, 2x1 and 2x2 taps, 9 in all, as many as the forward.
//!
//! Each phase is then a forward-style product ([`panel_product`]) reading one padded copy
//! of `dy` ([`Source`]); the phases are interleaved into `dx` (for stride 2 across, by
//! the product of each odd column phase as it stores). The transposed product this
//! replaces added `W^T dy` into a gradient of the image copy, whose rows overlap: every
//! tile was a read-modify-write of memory other tiles also wrote.
use super::divisor::Divisor;
use super::lanes::{merge2, Lanes};
use super::source::Source;
use super::tile::{panels, Layout};
use super::{Loan, Pass};
use crate::backend::Conv2dParams;
use crate::cpu::conv::per_image;
use std::mem::MaybeUninit;

/// `dx` phase by phase, one image per rayon task; `None` if [`PhaseSplit::new`] declines
/// the geometry or the CPU lacks `L`'s level. The caller has checked that the output
/// positions fill whole vectors.
pub fn input_grad<L: Lanes>(g: &[f32], w: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    if !L::LEVEL.is_supported() {
        return None;
    }
    let split = PhaseSplit::new::<L>(w, p)?;
    let (image, out_image) = (p.c_in * p.h_in * p.w_in, p.c_out * p.h_out() * p.w_out());
    let input_grad =
        |bufs: &mut Loan<Pass, (Vec<f32>, Vec<f32>)>, b, dxb: &mut [MaybeUninit<f32>]| {
            let gb = &g[b * out_image..(b + 1) * out_image];
            let (copy, out) = &mut **bufs;
            // SAFETY: the caller checked that the CPU has `L`'s level.
            unsafe {
                L::run(
                    #[inline(always)]
                    || split.image::<L>(p, gb, copy, out, dxb),
                )
            }
        };
    let new_buffers =
        || super::lend::<L, _>("phases", p, || (vec![0.0; split.src.len], vec![0.0; image]));
    // SAFETY: `PhaseSplit::image` writes every value of its image.
    Some(unsafe { per_image(p.batch, image, new_buffers, input_grad) })
}

/// Whether [`input_grad`] takes geometry `p`: every phase of `dx` has exactly
/// `dy`'s size (`h_in = sh*h_out`, likewise for the width) and at least one tap (a kernel
/// narrower than its stride skips pixels).
pub fn takes(p: &Conv2dParams) -> bool {
    let ((sh, sw), (ho, wo)) = (p.stride, (p.h_out(), p.w_out()));
    p.h_in == sh * ho && p.w_in == sw * wo && p.kh >= sh && p.kw >= sw
}

/// One phase of `dx` along one axis: its pixels are `first + s*o` for `o < n_out`, and
/// for each `(tap, offset)` of `taps` it meets kernel tap `tap` through padded-`dy` entry
/// `o + offset`.
struct AxisPhase {
    first: usize,
    taps: Vec<(usize, usize)>,
}

/// The `s` phases of one axis (kernel `k`, stride `s`, padding `pad`), and the padding of
/// `dy` that keeps every offset in range (as much on both sides, so that a `2*pad + 1`
/// kernel over it gives `dy`'s own size).
fn axis_phases(k: usize, s: usize, pad: usize) -> (Vec<AxisPhase>, usize) {
    let (k, s, pad) = (k as isize, s as isize, pad as isize);
    let phases: Vec<(isize, Vec<(usize, isize)>)> = (0..s)
        .map(|r| {
            // The first padded pixel of residue r inside the image is s*a0 + r.
            let a0 = (pad - r).div_euclid(s) + isize::from((pad - r).rem_euclid(s) != 0);
            // Pixel s*(a0 + o) + r meets tap r + s*j through dy[o + a0 - j].
            let taps = (0..)
                .map(|j| (r + s * j, a0 - j))
                .take_while(|&(t, _)| t < k);
            (
                s * a0 + r - pad,
                taps.map(|(t, d)| (t as usize, d)).collect(),
            )
        })
        .collect();
    let dy_pad = phases
        .iter()
        .flat_map(|(_, taps)| taps.iter().map(|&(_, d)| d.unsigned_abs()))
        .max()
        .unwrap_or(0);
    let phases = phases
        .into_iter()
        .map(|(first, taps)| AxisPhase {
            first: first as usize,
            taps: taps
                .into_iter()
                .map(|(t, d)| (t, (d + dy_pad as isize) as usize))
                .collect(),
        })
        .collect();
    (phases, dy_pad)
}

/// One phase of `dx`, ready to run on any image: its sub-kernel as panels, and the row of
/// the `dy` copy each reduction step reads.
struct Phase {
    first: (usize, usize),
    a_panels: Vec<f32>,
    rows: Vec<usize>,
}

/// Everything the per-image work shares: the `dy` copy's layout and the phases (row-major
/// over `(first.0, first.1)`, the order they are interleaved in).
struct PhaseSplit {
    src: Source,
    /// The stride-1 convolution over `dy` each phase is a part of (its geometry only).
    dy_conv: Conv2dParams,
    phases: Vec<Phase>,
}

impl PhaseSplit {
    /// `None` unless [`takes`] the geometry (a kernel over a padded `dy` produces `dy`'s
    /// size, so each phase must have it).
    fn new<L: Lanes>(w: &[f32], p: &Conv2dParams) -> Option<Self> {
        if !takes(p) {
            return None;
        }
        let ((sh, sw), (ho, wo)) = (p.stride, (p.h_out(), p.w_out()));
        let (rows_y, pad_y) = axis_phases(p.kh, sh, p.padding.0);
        let (rows_x, pad_x) = axis_phases(p.kw, sw, p.padding.1);
        let dy_conv = Conv2dParams {
            c_in: p.c_out,
            h_in: ho,
            w_in: wo,
            c_out: p.c_in,
            kh: 2 * pad_y + 1,
            kw: 2 * pad_x + 1,
            stride: (1, 1),
            padding: (pad_y, pad_x),
            ..*p
        };
        let src = Source::new::<L>(&dy_conv);
        let mut phases = Vec::with_capacity(sh * sw);
        for py in &rows_y {
            for px in &rows_x {
                // Reduction step (co, ty, tx), co-major: consecutive steps read one channel.
                let steps: Vec<_> = (0..p.c_out)
                    .flat_map(|co| {
                        py.taps
                            .iter()
                            .flat_map(move |&ty| px.taps.iter().map(move |&tx| (co, ty, tx)))
                    })
                    .collect();
                let (taps, k) = (p.kh * p.kw, dy_conv.kh * dy_conv.kw);
                let a_panels = panels(p.c_in, steps.len(), L::MR, |ci, step| {
                    let (co, (ky, _), (kx, _)) = steps[step];
                    w[(co * p.c_in + ci) * taps + ky * p.kw + kx]
                });
                let rows = steps
                    .iter()
                    .map(|&(co, (_, oy), (_, ox))| src.row[co * k + oy * dy_conv.kw + ox])
                    .collect();
                phases.push(Phase {
                    first: (py.first, px.first),
                    a_panels,
                    rows,
                });
            }
        }
        phases.sort_by_key(|phase| phase.first);
        Some(PhaseSplit {
            src,
            dy_conv,
            phases,
        })
    }

    /// `dx` of one image from its `dy`: `copy` holds `src.len` floats, zero where padding
    /// (as [`Source::fill`] wants it), and `out` is scratch the size of `dx`.
    #[inline(always)]
    fn image<L: Lanes>(
        &self,
        p: &Conv2dParams,
        dy: &[f32],
        copy: &mut [f32],
        out: &mut [f32],
        dx: &mut [MaybeUninit<f32>],
    ) {
        let ((sh, sw), wo) = (p.stride, p.w_out());
        let (pp, plane) = (p.h_out() * wo, p.h_in * p.w_in);
        self.src.fill::<L>(dy, &self.dy_conv, copy, &mut []);
        // Stride 2 across, with output rows of whole half-vectors: phase (fy, 1)
        // zips each of its vectors with phase (fy, 0)'s, just computed, straight into dx.
        // Interleaved in a pass of its own instead, the stores to dx (cold memory) came in
        // one burst, stalled, and took a third of the input grad.
        let half_vector = L::N / 2;
        let zip_in_product = sw == 2 && wo.is_multiple_of(half_vector);
        for (index, phase) in self.phases.iter().enumerate() {
            let dims = (p.c_in, phase.rows.len(), pp);
            let b_at = Layout::Patches(&self.src, &phase.rows);
            let (done, rest) = out.split_at_mut(index * p.c_in * pp);
            if zip_in_product && index % 2 == 1 {
                let (fy, even) = (index / 2, &done[(index - 1) * p.c_in * pp..]);
                let (per_plane, per_row) = (Divisor::new(pp), Divisor::new(wo));
                L::panel_product(
                    &phase.a_panels,
                    dims,
                    copy,
                    b_at,
                    Layout::Rows(pp),
                    #[inline(always)]
                    |at: usize, odd| {
                        let (ci, q) = per_plane.div_rem(at);
                        let pair = L::zip(L::load(even, at), odd);
                        for (half, v) in pair.into_iter().enumerate() {
                            let q = q + half * half_vector;
                            let (oy, ox) = per_row.div_rem(q);
                            L::store(dx, ci * plane + (sh * oy + fy) * p.w_in + 2 * ox, v);
                        }
                    },
                );
            } else {
                L::panel_product(
                    &phase.a_panels,
                    dims,
                    copy,
                    b_at,
                    Layout::Rows(pp),
                    #[inline(always)]
                    |at, v| L::store(rest, at, v),
                );
            }
        }
        if !zip_in_product {
            self.interleave::<L>(p, out, dx);
        }
    }

    /// `dx[ci, sh*oy + fy, sw*ox + fx] = out[phase (fy, fx)][ci, oy, ox]`, which writes
    /// every value of `dx` (`h_in = sh*h_out`, `w_in = sw*w_out`); for the geometries
    /// that do not zip phases inside the products.
    #[inline(always)]
    fn interleave<L: Lanes>(&self, p: &Conv2dParams, out: &[f32], dx: &mut [MaybeUninit<f32>]) {
        let ((sh, sw), wo) = (p.stride, p.w_out());
        let plane = p.h_out() * wo;
        let part = |phase: usize, ci: usize, oy: usize| {
            &out[(phase * p.c_in + ci) * plane + oy * wo..][..wo]
        };
        for (ci, channel) in dx.chunks_exact_mut(p.h_in * p.w_in).enumerate() {
            for (iy, row) in channel.chunks_exact_mut(p.w_in).enumerate() {
                let (oy, fy) = (iy / sh, iy % sh);
                if sw == 2 {
                    merge2::<L, _>(part(fy * 2, ci, oy), part(fy * 2 + 1, ci, oy), row);
                    continue;
                }
                for fx in 0..sw {
                    let src = part(fy * sw + fx, ci, oy);
                    for (d, &v) in row[fx..].iter_mut().step_by(sw).zip(src) {
                        d.write(v);
                    }
                }
            }
        }
    }
}
