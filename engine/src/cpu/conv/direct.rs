//! The direct f32 convolution, written once over a lane type ([`Lanes`]: 16 lanes on
//! AVX-512, 8 on AVX2+FMA, 4 portable ones for SSE/NEON): every pass is a register-tiled
//! outer product that reads its operands in place, so nothing is packed.
//!
//! Why not matrixmultiply here: it copies both operands into packed panels first. A
//! ResNet conv multiplies each entry of the patch matrix by only 16 to 64 weights, so for
//! it that copy (on top of im2col's) costs about as much as the arithmetic. The tiles
//! (`tile`) broadcast scalars of one operand and load vectors of the other; the passes
//! differ in where the two come from:
//!
//! - forward, `y = W col`: weights broadcast from `[k][MR]` panels; the `N` consecutive
//!   output positions of a patch row are loaded from a `Source`, a copy of the image
//!   laid out so that they are `N` consecutive floats (a fraction of im2col's matrix).
//! - input grad, stride 1: a forward convolution of `dy` with the kernel flipped and its
//!   channel axes swapped, padded by `k - 1 - pad`. Other strides: when the image is
//!   `stride` times the output, each stride phase of `dx` is such a convolution with a
//!   sub-kernel (`phases`); otherwise `W^T dy` added into a gradient of the image copy,
//!   which is then summed back onto the pixels.
//! - weight grad, channels-last: `dW[co, ky, kx, ci..ci+N] += dy[co, q] x[q + tap, ci..]`
//!   broadcasts `dy` (transposed once, so one position's channels are adjacent) and loads
//!   `N` input channels of the padded image, stored `[h][w][c]`.
//!
//! The vectors are intrinsics behind [`Lanes`] rather than lane arrays: with a 256-FMA
//! loop body LLVM sometimes vectorised across the reduction (gathers and scatters, 20x
//! slower) instead of keeping the tile in registers. Each entry point runs its per-image
//! work inside [`Lanes::run`], which compiles it with the level's target features.
mod divisor;
mod isa;
mod lanes;
pub(super) mod phases;
mod source;
mod tile;
mod weight_grad;

use super::kept::{self, Loan};
use super::{per_image, zeroed};
use crate::backend::Conv2dParams;
pub use isa::Portable;
#[cfg(target_arch = "x86_64")]
pub use isa::{Avx2, Avx512};
pub use lanes::Lanes;
use source::Source;
use std::mem::MaybeUninit;
use tile::{panels, Layout};
pub use weight_grad::conv2d_weight_grad;

/// Whole vectors along the output positions (`h_out*w_out` a multiple of `N`).
fn whole_vectors<L: Lanes>(p: &Conv2dParams) -> bool {
    (p.h_out() * p.w_out()).is_multiple_of(L::N)
}

/// Buffers of one task of the forward or input grad, reused across its images.
struct ImageBuffers {
    copy: Vec<f32>,
    /// One row split into its stride phases.
    phases: Vec<f32>,
}

impl ImageBuffers {
    fn new(src: &Source, p: &Conv2dParams) -> Self {
        ImageBuffers {
            copy: vec![0.0; src.len],
            phases: vec![0.0; p.w_in + p.stride.1],
        }
    }
}

/// What a direct pass's kept buffers ([`kept`]) were laid out for: the pass, the lane
/// width (which decides the image copy's layout) and the conv's sizes, less the batch
/// (the buffers hold one image, or a fixed group of them).
#[derive(Clone, Copy, PartialEq)]
struct Pass {
    name: &'static str,
    lanes: usize,
    p: Conv2dParams,
}

/// The buffers of pass `name` of `p` that an earlier task on this thread left, else `new()`.
fn lend<L: Lanes, B: 'static>(
    name: &'static str,
    p: &Conv2dParams,
    new: impl FnOnce() -> B,
) -> Loan<Pass, B> {
    let p = Conv2dParams { batch: 0, ..*p };
    kept::lend(
        Pass {
            name,
            lanes: L::N,
            p,
        },
        new,
    )
}

/// What the forward does to each output vector before it stores it: nothing, or (batch
/// norm folded into the conv, for evaluation) add its channel's bias, then optionally
/// clamp at zero. In the store it costs nothing more than the store; as ops of their
/// own, a bias add and a ReLU are two more passes over the output.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Store the product as it is.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        relu: false,
    };

    /// The epilogue of the vector stored at offset `at` of an output whose channel
    /// planes are `per_plane` apart.
    #[inline(always)]
    fn apply<L: Lanes>(&self, per_plane: divisor::Divisor, at: usize, v: L::V) -> L::V {
        let v = match self.bias {
            Some(bias) => L::add(v, L::splat(bias[per_plane.div_rem(at).0])),
            None => v,
        };
        if self.relu {
            L::max(v, L::zero())
        } else {
            v
        }
    }
}

#[inline(always)]
fn forward_image<L: Lanes>(
    a_panels: &[f32],
    src: &Source,
    p: &Conv2dParams,
    x: &[f32],
    bufs: &mut ImageBuffers,
    epilogue: Epilogue,
    y: &mut [MaybeUninit<f32>],
) {
    let (k, pp) = super::col_dims(p);
    src.fill::<L>(x, p, &mut bufs.copy, &mut bufs.phases);
    let dims = (p.c_out, k, pp);
    let b_at = Layout::Patches(src, &src.row);
    // Every one of the `c_out x pp` values is stored.
    let (b, c_at) = (&bufs.copy, Layout::Rows(pp));
    let per_plane = divisor::Divisor::new(pp);
    L::panel_product(
        a_panels,
        dims,
        b,
        b_at,
        c_at,
        #[inline(always)]
        |at, v| L::store(y, at, epilogue.apply::<L>(per_plane, at, v)),
    );
}

/// Forward: `y[b] = W patches(x[b])`, one image per rayon task. `None` if the output
/// positions do not fill whole vectors, or the CPU lacks `L`'s level.
pub fn conv2d<L: Lanes>(x: &[f32], w: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    conv2d_then::<L>(x, w, p, Epilogue::NONE)
}

/// [`conv2d`] with `epilogue` applied to every output vector as it is stored.
pub fn conv2d_then<L: Lanes>(
    x: &[f32],
    w: &[f32],
    p: &Conv2dParams,
    epilogue: Epilogue,
) -> Option<Vec<f32>> {
    if !whole_vectors::<L>(p) || !L::LEVEL.is_supported() {
        return None;
    }
    assert!(epilogue.bias.is_none_or(|b| b.len() == p.c_out));
    let (k, pp) = super::col_dims(p);
    let image = p.c_in * p.h_in * p.w_in;
    let a_panels = panels(p.c_out, k, L::MR, |co, r| w[co * k + r]);
    let src = Source::new::<L>(p);
    let forward = |bufs: &mut Loan<Pass, ImageBuffers>, b, yb: &mut [MaybeUninit<f32>]| {
        let xb = &x[b * image..(b + 1) * image];
        // SAFETY: the CPU has `L`'s level (checked above).
        unsafe {
            L::run(
                #[inline(always)]
                || forward_image::<L>(&a_panels, &src, p, xb, bufs, epilogue, yb),
            )
        }
    };
    let new_buffers = || lend::<L, _>("forward", p, || ImageBuffers::new(&src, p));
    // SAFETY: `forward_image` stores every value of its image.
    Some(unsafe { per_image(p.batch, p.c_out * pp, new_buffers, forward) })
}

/// `dx[b] = unfill(W^T dy[b])`: the product lands in a gradient of the image copy
/// (entries that alias one pixel add up), then each pixel gathers its entries. Rows are
/// taken tap-major (`rows[tap*c_in + ci]`), so the 8 rows of a tile are 8 channels (disjoint
/// planes): rows of one channel overlap, and a load of what the previous row just stored,
/// shifted by a float, stalls until that store completes.
#[inline(always)]
fn input_grad_image<L: Lanes>(
    a_panels: &[f32],
    src: &Source,
    rows: &[usize],
    p: &Conv2dParams,
    g: &[f32],
    bufs: &mut ImageBuffers,
    dx: &mut [f32],
) {
    let (k, pp) = super::col_dims(p);
    let copy = &mut bufs.copy;
    copy.fill(0.0);
    let dims = (k, p.c_out, pp);
    L::panel_product(
        a_panels,
        dims,
        g,
        Layout::Rows(pp),
        Layout::Patches(src, rows),
        // Entries that alias one pixel add up.
        #[inline(always)]
        |at, v| {
            let sum = L::add(L::load(copy, at), v);
            L::store(copy, at, sum)
        },
    );
    src.unfill::<L>(&bufs.copy, p, dx, &mut bufs.phases);
}

/// Input gradient. Stride 1 (with `pad <= k - 1`): `dx` is the forward convolution of
/// `dy` with `W'[ci, co, ky, kx] = W[co, ci, kh-1-ky, kw-1-kx]` and padding `k - 1 - pad`.
/// Other strides, when `phases::input_grad` takes the geometry: one such convolution per stride
/// phase of `dx`. Otherwise the transpose of the forward: `W^T dy[b]` added into a
/// gradient of the image copy, then summed back onto the pixels.
pub fn conv2d_input_grad<L: Lanes>(g: &[f32], w: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    if !L::LEVEL.is_supported() {
        return None;
    }
    if p.stride == (1, 1) && p.padding.0 < p.kh && p.padding.1 < p.kw {
        let flipped = Conv2dParams {
            c_in: p.c_out,
            h_in: p.h_out(),
            w_in: p.w_out(),
            c_out: p.c_in,
            padding: (p.kh - 1 - p.padding.0, p.kw - 1 - p.padding.1),
            ..*p
        };
        if whole_vectors::<L>(&flipped) {
            let taps = p.kh * p.kw;
            // Index `(ci, co, t)` of W' reads `(co, ci, taps - 1 - t)` of W: both kernel
            // axes reversed at once.
            let w_flipped: Vec<f32> = (0..p.c_in * p.c_out * taps)
                .map(|i| {
                    let (ci, co, t) = (i / (p.c_out * taps), (i / taps) % p.c_out, i % taps);
                    w[(co * p.c_in + ci) * taps + taps - 1 - t]
                })
                .collect();
            return conv2d::<L>(g, &w_flipped, &flipped);
        }
    }
    if !whole_vectors::<L>(p) {
        return None;
    }
    if let Some(dx) = phases::input_grad::<L>(g, w, p) {
        return Some(dx);
    }
    let (k, pp) = super::col_dims(p);
    let (image, taps) = (p.c_in * p.h_in * p.w_in, p.kh * p.kw);
    let patch_row = |r: usize| (r % p.c_in) * taps + r / p.c_in;
    let a_panels = panels(k, p.c_out, L::MR, |r, co| w[co * k + patch_row(r)]);
    let src = Source::new::<L>(p);
    let rows: Vec<usize> = (0..k).map(|r| src.row[patch_row(r)]).collect();
    let input_grad = |bufs: &mut Loan<Pass, ImageBuffers>, b, dxb: &mut [MaybeUninit<f32>]| {
        let gb = &g[b * p.c_out * pp..(b + 1) * p.c_out * pp];
        let dxb = zeroed(dxb);
        // SAFETY: the CPU has `L`'s level (checked above).
        unsafe {
            L::run(
                #[inline(always)]
                || input_grad_image::<L>(&a_panels, &src, &rows, p, gb, bufs, dxb),
            )
        }
    };
    let new_buffers = || lend::<L, _>("input grad", p, || ImageBuffers::new(&src, p));
    // SAFETY: `input_grad` zeroes its image first.
    Some(unsafe { per_image(p.batch, image, new_buffers, input_grad) })
}
