//! The direct weight gradient, channels-last: `dW[co, ky, kx, ci..ci+N] += dy[co, q]
//! x[q + tap, ci..]`, `dy` transposed once (one position's channels adjacent) and broadcast,
//! `N` input channels of the padded image loaded (`tile::weight_tile`).
use super::lanes::{transpose_rows, Lanes, MAX_LANES};
use crate::backend::Conv2dParams;
use crate::cpu::conv::WEIGHT_GRAD_GROUP;
use rayon::prelude::*;

/// Buffers of one weight-gradient task, reused across its groups: the group's images
/// padded and channels-last (`[b][h + 2ph][w + 2pw][c_in]`, the border zero) and `dy^T`
/// (`[b][position][ld]`, channels past `c_out` zero).
struct WeightGradBuffers {
    images: Vec<f32>,
    dy_t: Vec<f32>,
}

/// One group's `dW`: every `WR x (WV*N)` tile of `dW` (output channels by input-channel
/// vectors of one kernel tap) reduces over all of the group's output positions.
#[inline(always)]
fn weight_grad_group<L: Lanes>(
    p: &Conv2dParams,
    x: &[f32],
    g: &[f32],
    bufs: &mut WeightGradBuffers,
    dw: &mut [f32],
) {
    let (c, taps, (ho, wo)) = (p.c_in, p.kh * p.kw, (p.h_out(), p.w_out()));
    let (hp, wp, pp) = (p.h_in + 2 * p.padding.0, p.w_in + 2 * p.padding.1, ho * wo);
    let (image, padded, out_image) = (c * p.h_in * p.w_in, hp * wp * c, p.c_out * pp);
    let ld = p.c_out.next_multiple_of(L::WR);
    let images = g.len() / out_image;
    for b in 0..images {
        // Rows of the NCHW image are the channels: transposing them gives [h][w][c].
        for iy in 0..p.h_in {
            let at = b * padded + ((iy + p.padding.0) * wp + p.padding.1) * c;
            let xb = &x[b * image + iy * p.w_in..(b + 1) * image];
            transpose_rows::<L>(xb, c, p.w_in, p.h_in * p.w_in, &mut bufs.images[at..], c);
        }
        let dy_t = &mut bufs.dy_t[b * pp * ld..(b + 1) * pp * ld];
        transpose_rows::<L>(
            &g[b * out_image..(b + 1) * out_image],
            p.c_out,
            pp,
            pp,
            dy_t,
            ld,
        );
    }
    // Vector v is input channels N*(v % blocks).. of tap v / blocks.
    let blocks = c / L::N;
    let vectors = taps * blocks;
    let offset = |v: usize| {
        let (tap, block) = (v / blocks, v % blocks);
        ((tap / p.kw) * wp + tap % p.kw) * c + block * L::N
    };
    let step = p.stride.1 * c;
    // Where each output row starts: in the images (its first tap) and in dy^T.
    let runs: Vec<(usize, usize)> = (0..images)
        .flat_map(|b| {
            (0..ho).map(move |oy| {
                (
                    b * padded + p.stride.0 * oy * wp * c,
                    (b * pp + oy * wo) * ld,
                )
            })
        })
        .collect();
    let (wr, wv, n) = (L::WR, L::WV, L::N);
    let tile_len = wr * wv * n;
    // Vectors past the last repeat it; their results are dropped.
    let offsets: Vec<[usize; MAX_LANES]> = (0..vectors)
        .step_by(wv)
        .map(|vb| std::array::from_fn(|v| offset((vb + v).min(vectors - 1))))
        .collect();
    // Every tile's accumulators, tile (cb, vb) at `(cb / wr * offsets.len() + vb / wv)`.
    let mut sums = vec![0.0; p.c_out.div_ceil(wr) * offsets.len() * tile_len];
    let chunk_rows = if L::DW_ROW_CHUNKS {
        rows_per_chunk(p, ld)
    } else {
        runs.len().max(1)
    };
    for chunk in runs.chunks(chunk_rows) {
        for (tiles, cb) in sums
            .chunks_exact_mut(offsets.len() * tile_len)
            .zip((0..p.c_out).step_by(wr))
        {
            for (sum, off) in tiles.chunks_exact_mut(tile_len).zip(&offsets) {
                let off = &off[..wv];
                L::weight_tile(chunk, wo, &bufs.images, step, off, &bufs.dy_t, ld, cb, sum);
            }
        }
    }
    for (tiles, cb) in sums
        .chunks_exact(offsets.len() * tile_len)
        .zip((0..p.c_out).step_by(wr))
    {
        for (sum, vb) in tiles.chunks_exact(tile_len).zip((0..vectors).step_by(wv)) {
            for (i, row) in sum
                .chunks_exact(wv * n)
                .enumerate()
                .filter(|(i, _)| cb + i < p.c_out)
            {
                for (v, lanes) in row
                    .chunks_exact(n)
                    .enumerate()
                    .filter(|(v, _)| vb + v < vectors)
                {
                    let (tap, block) = ((vb + v) / blocks, (vb + v) % blocks);
                    for (l, &val) in lanes.iter().enumerate() {
                        dw[((cb + i) * c + block * n + l) * taps + tap] = val;
                    }
                }
            }
        }
    }
}

/// Output rows per pass of the weight gradient's tiles: as many as keep what they read
/// (their image rows, the kernel's extra rows, their `dy^T` rows) within about 32 KiB,
/// so that every tile after the first finds it in L1. Each tile running over the whole
/// group instead read it from L2 for every tile (330 KB of images at 32x16x16 stride 2),
/// a few cache lines per 12 multiply-adds.
fn rows_per_chunk(p: &Conv2dParams, ld: usize) -> usize {
    const BUDGET: usize = 32 * 1024 / 4;
    let padded_row = (p.w_in + 2 * p.padding.1) * p.c_in;
    let per_row = p.stride.0 * padded_row + p.w_out() * ld;
    let extra = p.kh.saturating_sub(p.stride.0) * padded_row;
    (BUDGET.saturating_sub(extra) / per_row).max(1)
}

/// Weight gradient: `dW = sum_b dy[b] patches(x[b])^T`, one fixed group of images per
/// rayon task, the group sums then added in order (so the result does not depend on the
/// number of threads). `None` unless `c_in` is a multiple of `N` and the CPU has `L`'s
/// level.
pub fn conv2d_weight_grad<L: Lanes>(g: &[f32], x: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    if !p.c_in.is_multiple_of(L::N) || !L::LEVEL.is_supported() {
        return None;
    }
    let (k, pp) = crate::cpu::conv::col_dims(p);
    let (image, out_image) = (p.c_in * p.h_in * p.w_in, p.c_out * pp);
    let padded = (p.h_in + 2 * p.padding.0) * (p.w_in + 2 * p.padding.1) * p.c_in;
    let ld = p.c_out.next_multiple_of(L::WR);
    let groups: Vec<Vec<f32>> = (0..p.batch.div_ceil(WEIGHT_GRAD_GROUP))
        .into_par_iter()
        .map_init(
            || {
                super::lend::<L, _>("weight grad", p, || WeightGradBuffers {
                    images: vec![0.0; WEIGHT_GRAD_GROUP * padded],
                    dy_t: vec![0.0; WEIGHT_GRAD_GROUP * pp * ld],
                })
            },
            |bufs, group| {
                let first = group * WEIGHT_GRAD_GROUP;
                let last = (first + WEIGHT_GRAD_GROUP).min(p.batch);
                let (xg, gg) = (
                    &x[first * image..last * image],
                    &g[first * out_image..last * out_image],
                );
                let mut dw = vec![0.0; p.c_out * k];
                // SAFETY: the CPU has `L`'s level (checked above).
                unsafe {
                    L::run(
                        #[inline(always)]
                        || weight_grad_group::<L>(p, xg, gg, bufs, &mut dw),
                    )
                };
                dw
            },
        )
        .collect();
    Some(crate::cpu::conv::sum_in_order(groups, p.c_out * k))
}
