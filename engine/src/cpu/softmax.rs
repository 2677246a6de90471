//! Row-wise softmax and log-softmax (last axis), one pass to find the max, one to
//! exponentiate and sum, one to scale; rows run in parallel for large inputs.
use super::elementwise::PAR_MIN;
use super::simd::{self, with_simd};
use crate::Float;
use rayon::prelude::*;

fn for_rows<T: Float>(
    out: &mut [T],
    cols: usize,
    total: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if total >= PAR_MIN {
        let rows_per_task = (PAR_MIN / 2 / cols).max(1);
        out.par_chunks_mut(rows_per_task * cols)
            .enumerate()
            .for_each(|(t, blk)| {
                for (j, row) in blk.chunks_mut(cols).enumerate() {
                    f(t * rows_per_task + j, row);
                }
            });
    } else {
        for (r, row) in out.chunks_mut(cols).enumerate() {
            f(r, row);
        }
    }
}

pub fn softmax_rows<T: Float>(x: &[T], rows: usize, cols: usize, log: bool) -> Vec<T> {
    let mut out = vec![T::ZERO; rows * cols];
    if cols == 0 {
        return out;
    }
    for_rows(&mut out, cols, x.len(), |r, dst| {
        let src = &x[r * cols..(r + 1) * cols];
        with_simd(
            #[inline(always)]
            || {
                let m = simd::max(src);
                if log {
                    let lse = simd::sum_exp_shifted(src, m, None).ln() + m;
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = v - lse;
                    }
                } else {
                    let s = simd::sum_exp_shifted(src, m, Some(dst));
                    let inv = T::ONE / s;
                    for d in dst.iter_mut() {
                        *d = *d * inv;
                    }
                }
            },
        )
    });
    out
}

/// softmax: `dx = y * (g - <g, y>)`; log-softmax: `dx = g - softmax(x) * sum(g)`.
pub fn softmax_rows_backward<T: Float>(
    y: &[T],
    g: &[T],
    rows: usize,
    cols: usize,
    log: bool,
) -> Vec<T> {
    let mut out = vec![T::ZERO; rows * cols];
    if cols == 0 {
        return out;
    }
    for_rows(&mut out, cols, y.len(), |r, dst| {
        let (yr, gr) = (&y[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
        with_simd(
            #[inline(always)]
            || {
                if log {
                    let gs = simd::sum(gr);
                    for ((d, &yv), &gv) in dst.iter_mut().zip(yr).zip(gr) {
                        *d = gv - yv.fast_exp() * gs;
                    }
                } else {
                    let dot = simd::dot(gr, yr);
                    for ((d, &yv), &gv) in dst.iter_mut().zip(yr).zip(gr) {
                        *d = yv * (gv - dot);
                    }
                }
            },
        )
    });
    out
}
