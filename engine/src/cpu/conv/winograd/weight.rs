//! The weight gradient by Winograd, written here for F(2x2, 3x3) (F(4x4, 3x3) runs the
//! same code, see the end of these notes). The forward computes each output tile as
//! `y_t = A^T [sum_ci U[ci, co] . V_t[ci]] A` with `U = G g G^T`; running those linear
//! maps backwards, the gradient of one kernel `g[ci, co]` is
//!
//! ```text
//!     dg = G^T dU G,    dU[e] = sum_t V_t[e][ci] dM_t[e][co],    dM_t = A dy_t A^T,
//! ```
//!
//! so per element `e` it is one `c_in x c_out` product reduced over every tile of the
//! batch, 16 multiplies per tile and channel pair where the direct kernel spends 36.
//!
//! Per fixed group of images (one rayon task each, as in the direct weight grad):
//! 1. each image is copied channels-last and padded as the forward does, and `dy` is
//!    copied channels-last into `[2 * tiles.0][2 * tiles.1][c_out]`: on odd sizes the
//!    missing row or column of the last tiles stays zero, so those outputs (which the
//!    forward computes and drops) add nothing;
//! 2. tile after tile, across the group's images, `V = B^T d B` and `dM = A dy A^T` fill
//!    a block (`[element][tile][channel]`, the forward's layout); each full block is
//!    added into the group's `dU` (`product::elementwise_reductions`);
//! 3. the groups' `dU` are added in order, and `G^T dU G` (in f64, once per channel
//!    pair) is the kernel gradient.
//!
//! Accuracy (the bound `tests.rs` checks): `V` takes 2 roundings, `dM` 2, the product 1,
//! the sum over a group's tiles `T_g` and the sum of the groups `batch / 8`; the
//! back-transform in f64 rounds once. So the error is at most `gamma_(T_g + groups + 6)`
//! times `S`, the sum of the magnitudes added. Along one axis,
//! `sum_e |G[e, k]| (|B^T| 1)_e (|A| 1)_e` is 6, 4 and 6 for the kernel taps `k` (1, 2, 2,
//! 1 from `A`, 2 from every row of `B^T`), so each tile adds at most `36 max|dy| max|x|`
//! per channel pair, and `S <= 36 T max|dy| max|x|` over the batch's `T` tiles (the
//! direct sum's is `4 T max|dy| max|x|`: a tile is 4 outputs).
//!
//! The same code runs F(4x4, 3x3) ([`Tiling`]): 36 elements, 4x4 tiles of `dy`, and a
//! per-tile sum of magnitudes up to `(160/3)^2 max|dy| max|x|` (`tests.rs`).
use super::super::direct::Lanes;
use super::super::{sum_in_order, WEIGHT_GRAD_GROUP};
use super::layout::transpose;
use super::{pad_channels_last, product, takes, tile_transforms, Buffers, Geometry, Role, Tiling};
use super::{InputOf, OutputGradOf};
use crate::backend::Conv2dParams;
use rayon::prelude::*;

/// Floats of one element's `V` and `dM` rows in a block (`block * (c_in + c_out)`): 32 KB,
/// so that the rows the register tiles re-read (once per tile of `dU`) stay in L1.
const ELEMENT_BLOCK_FLOATS: usize = 8 * 1024;

/// The forward's geometry with the weight gradient's block: tiles need not come in
/// whole register tiles here (the reduction streams them one at a time), and an odd
/// count keeps the 16 elements' rows of one tile (`block * c` floats apart) off a
/// power-of-two stride: at 256 tiles of 16 channels they were 16 KB apart, all in one
/// L1 set, and the transforms' stores took as long as the reduction.
fn geometry<L: Lanes, F: Tiling>(p: &Conv2dParams) -> Geometry {
    let g = Geometry::of::<L, F>(p);
    Geometry {
        block: ((ELEMENT_BLOCK_FLOATS / (g.c_in + g.c_out)).max(2) - 1) | 1,
        ..g
    }
}

/// Adds one group's `dU` (`[element][c_in][c_out]`, padded channels) into `du`: `x` and
/// `dy` hold the group's images, NCHW.
#[inline(always)]
fn reduce_group<L: Lanes, F: Tiling>(
    g: &Geometry,
    p: &Conv2dParams,
    (x, dy): (&[f32], &[f32]),
    bufs: &mut Buffers,
    du: &mut [f32],
) {
    let (h, w) = (p.h_in, p.w_in);
    let (image, out_image) = (p.c_in * h * w, p.c_out * h * w);
    let (tiles, pitch) = (g.tiles.0 * g.tiles.1, g.out * g.tiles.1);
    let dims = |filled| (filled, g.c_in, g.c_out);
    let blocks = (g.block, F::ELEMENTS);
    let mut filled = 0;
    for b in 0..x.len() / image {
        pad_channels_last::<L>(&x[b * image..(b + 1) * image], p, g, &mut bufs.image);
        let dy = &dy[b * out_image..(b + 1) * out_image];
        for oy in 0..h {
            let at = oy * pitch * g.c_out;
            transpose::<L, f32>(
                &dy[oy * w..],
                (p.c_out, w, h * w),
                &mut bufs.out[at..],
                g.c_out,
            );
        }
        // Runs of tiles up to the end of the image or of the block, whichever is first.
        let mut t = 0;
        while t < tiles {
            let run = (t, (tiles - t).min(g.block - filled));
            let image = (&bufs.image[..], g.c_in, g.pitch);
            tile_transforms::<L, InputOf<F>>(g, image, run, &mut bufs.v, filled);
            let dy = (&bufs.out[..], g.c_out, pitch);
            let dm = &mut bufs.m;
            tile_transforms::<L, OutputGradOf<F>>(g, dy, run, dm, filled);
            (t, filled) = (t + run.1, filled + run.1);
            if filled == g.block {
                product::elementwise_reductions::<L>(&bufs.v, &bufs.m, du, dims(filled), blocks);
                filled = 0;
            }
        }
    }
    if filled > 0 {
        product::elementwise_reductions::<L>(&bufs.v, &bufs.m, du, dims(filled), blocks);
    }
}

/// Weight gradient by Winograd with tiling `F`: `dW[co, ci]` (`[c_out][c_in][3][3]`) from
/// `dy` and `x`, one fixed group of images per rayon task and the groups added in order
/// (the same bits however many threads run). `None` unless Winograd [`takes`] the
/// geometry and the CPU has `L`'s level.
pub fn conv2d_weight_grad<L: Lanes, F: Tiling>(
    dy: &[f32],
    x: &[f32],
    p: &Conv2dParams,
) -> Option<Vec<f32>> {
    if !takes(p) || !L::LEVEL.is_supported() {
        return None;
    }
    let g = geometry::<L, F>(p);
    let (image, out_image) = (p.c_in * p.h_in * p.w_in, p.c_out * p.h_in * p.w_in);
    let len = F::ELEMENTS * g.c_in * g.c_out;
    let groups: Vec<Vec<f32>> = (0..p.batch.div_ceil(WEIGHT_GRAD_GROUP))
        .into_par_iter()
        .map_init(
            || Buffers::lend(&g, p, Role::WeightGrad),
            |bufs, group| {
                let first = group * WEIGHT_GRAD_GROUP;
                let last = (first + WEIGHT_GRAD_GROUP).min(p.batch);
                let images = (
                    &x[first * image..last * image],
                    &dy[first * out_image..last * out_image],
                );
                let mut du = vec![0.0; len];
                // SAFETY: the CPU has `L`'s level (checked above).
                unsafe {
                    L::run(
                        #[inline(always)]
                        || reduce_group::<L, F>(&g, p, images, bufs, &mut du),
                    )
                };
                du
            },
        )
        .collect();
    let du = sum_in_order(groups, len);
    let mut dw = vec![0.0; p.c_out * p.c_in * 9];
    let mut of_pair = vec![0.0; F::ELEMENTS];
    for co in 0..p.c_out {
        for ci in 0..p.c_in {
            for (e, v) in of_pair.iter_mut().enumerate() {
                *v = du[(e * g.c_in + ci) * g.c_out + co];
            }
            dw[(co * p.c_in + ci) * 9..][..9].copy_from_slice(&F::kernel_grad(&of_pair));
        }
    }
    Some(dw)
}
