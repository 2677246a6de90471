//! Pooling kernels over NCHW, one `(n, c)` plane per rayon task (planes are independent,
//! and a plane's backward only ever adds into that plane).
//!
//! Output `(oy, ox)` covers input rows `oy*sh - ph .. +kh` and columns `ox*sw - pw .. +kw`;
//! the part of that window outside the image is padding.
use super::elementwise::PAR_MIN;
use crate::backend::Pool2dParams;
use crate::Float;
use rayon::prelude::*;

/// The window of output `(oy, ox)` clipped to the image: input rows `[y0, y1)`, columns
/// `[x0, x1)`.
#[inline(always)]
fn window(p: &Pool2dParams, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
    let clip = |o: usize, s: usize, pad: usize, k: usize, n: usize| {
        let start = (o * s) as isize - pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + k as isize).max(0) as usize).min(n);
        (lo, hi.max(lo))
    };
    let (y0, y1) = clip(oy, p.stride.0, p.padding.0, p.kernel.0, p.h_in);
    let (x0, x1) = clip(ox, p.stride.1, p.padding.1, p.kernel.1, p.w_in);
    (y0, y1, x0, x1)
}

/// Runs `f(plane index, output plane)` for every plane, in parallel when large enough.
fn for_planes<T: Float>(
    out: &mut [T],
    plane: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if plane == 0 {
        return;
    }
    if work >= PAR_MIN {
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(plane).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// Input index (within the plane) of the first maximum of window `(oy, ox)`; padding is
/// `-inf`, so it never wins. `None` if the window holds no input pixel.
#[inline(always)]
fn argmax<T: Float>(x: &[T], p: &Pool2dParams, oy: usize, ox: usize) -> Option<usize> {
    let (y0, y1, x0, x1) = window(p, oy, ox);
    let mut best: Option<(usize, T)> = None;
    for iy in y0..y1 {
        for ix in x0..x1 {
            let i = iy * p.w_in + ix;
            // Strict `>`: ties keep the first maximum in row-major order.
            if best.is_none_or(|(_, b)| x[i] > b) {
                best = Some((i, x[i]));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// `y = max over the window` (padding is `-inf`).
pub fn max_pool2d<T: Float>(x: &[T], p: &Pool2dParams) -> Vec<T> {
    let (ho, wo, hw) = (p.h_out(), p.w_out(), p.h_in * p.w_in);
    let mut y = vec![T::ZERO; p.batch * p.channels * ho * wo];
    for_planes(&mut y, ho * wo, x.len(), |i, yp| {
        let xp = &x[i * hw..(i + 1) * hw];
        for oy in 0..ho {
            for ox in 0..wo {
                yp[oy * wo + ox] = argmax(xp, p, oy, ox).map_or(T::NEG_INFINITY, |j| xp[j]);
            }
        }
    });
    y
}

/// `dx[argmax of window] += dy[window]`, the argmax recomputed from `x`.
pub fn max_pool2d_backward<T: Float>(x: &[T], g: &[T], p: &Pool2dParams) -> Vec<T> {
    let (ho, wo, hw) = (p.h_out(), p.w_out(), p.h_in * p.w_in);
    let mut dx = vec![T::ZERO; x.len()];
    for_planes(&mut dx, hw, x.len(), |i, dxp| {
        let (xp, gp) = (&x[i * hw..(i + 1) * hw], &g[i * ho * wo..(i + 1) * ho * wo]);
        for oy in 0..ho {
            for ox in 0..wo {
                if let Some(j) = argmax(xp, p, oy, ox) {
                    dxp[j] += gp[oy * wo + ox];
                }
            }
        }
    });
    dx
}

/// `y = sum over the window / (kh*kw)`: padding counts as zeros (count_include_pad).
pub fn avg_pool2d<T: Float>(x: &[T], p: &Pool2dParams) -> Vec<T> {
    let (ho, wo, hw) = (p.h_out(), p.w_out(), p.h_in * p.w_in);
    let inv = T::ONE / T::from_usize(p.kernel.0 * p.kernel.1);
    let mut y = vec![T::ZERO; p.batch * p.channels * ho * wo];
    for_planes(&mut y, ho * wo, x.len(), |i, yp| {
        let xp = &x[i * hw..(i + 1) * hw];
        for oy in 0..ho {
            for ox in 0..wo {
                let (y0, y1, x0, x1) = window(p, oy, ox);
                let mut s = T::ZERO;
                for iy in y0..y1 {
                    for &v in &xp[iy * p.w_in + x0..iy * p.w_in + x1] {
                        s += v;
                    }
                }
                yp[oy * wo + ox] = s * inv;
            }
        }
    });
    y
}

/// `dx[i] += dy[window] / (kh*kw)` for every window that covers pixel `i`.
pub fn avg_pool2d_backward<T: Float>(g: &[T], p: &Pool2dParams) -> Vec<T> {
    let (ho, wo, hw) = (p.h_out(), p.w_out(), p.h_in * p.w_in);
    let inv = T::ONE / T::from_usize(p.kernel.0 * p.kernel.1);
    let n = p.batch * p.channels * hw;
    let mut dx = vec![T::ZERO; n];
    for_planes(&mut dx, hw, n, |i, dxp| {
        let gp = &g[i * ho * wo..(i + 1) * ho * wo];
        for oy in 0..ho {
            for ox in 0..wo {
                let share = gp[oy * wo + ox] * inv;
                let (y0, y1, x0, x1) = window(p, oy, ox);
                for iy in y0..y1 {
                    for d in &mut dxp[iy * p.w_in + x0..iy * p.w_in + x1] {
                        *d += share;
                    }
                }
            }
        }
    });
    dx
}
