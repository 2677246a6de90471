//! Reductions over one axis, viewing the tensor as `[outer, len, inner]`.
//!
//! `inner == 1` (reducing the last axis) reduces contiguous rows with lane-parallel
//! accumulators; otherwise the loop walks `len` outside and the contiguous `inner` run
//! inside, so memory is still read in order.
use super::elementwise::PAR_MIN;
use super::simd::{self, with_simd};
use crate::backend::ReduceOp;
use crate::{Float, Shape};
use rayon::prelude::*;

pub fn reduce<T: Float>(x: &[T], op: ReduceOp, shape: &Shape, axis: usize) -> Vec<T> {
    let d = shape.dims();
    let outer: usize = d[..axis].iter().product();
    let len = d[axis];
    let inner: usize = d[axis + 1..].iter().product();
    let mut out = vec![T::ZERO; outer * inner];
    if out.is_empty() {
        return out;
    }
    let block = |o: usize, dst: &mut [T]| {
        let src = &x[o * len * inner..(o + 1) * len * inner];
        with_simd(
            #[inline(always)]
            || {
                if inner == 1 {
                    dst[0] = reduce_row(src, op);
                } else {
                    reduce_strided(src, len, inner, op, dst);
                }
            },
        )
    };
    if x.len() >= PAR_MIN && outer > 1 {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(o, dst)| block(o, dst));
    } else {
        for (o, dst) in out.chunks_mut(inner).enumerate() {
            block(o, dst);
        }
    }
    out
}

#[inline(always)]
fn reduce_row<T: Float>(row: &[T], op: ReduceOp) -> T {
    match op {
        ReduceOp::Sum => simd::sum(row),
        ReduceOp::Max => simd::max(row),
        ReduceOp::LogSumExp => {
            let m = simd::max(row);
            if m == T::NEG_INFINITY || !m.is_finite() {
                return m;
            }
            simd::sum_exp_shifted(row, m, None).ln() + m
        }
    }
}

#[inline(always)]
fn reduce_strided<T: Float>(src: &[T], len: usize, inner: usize, op: ReduceOp, dst: &mut [T]) {
    let rows = || src.chunks_exact(inner).take(len);
    match op {
        ReduceOp::Sum => {
            dst.fill(T::ZERO);
            for r in rows() {
                for (d, &v) in dst.iter_mut().zip(r) {
                    *d += v;
                }
            }
        }
        ReduceOp::Max => {
            dst.fill(T::NEG_INFINITY);
            for r in rows() {
                for (d, &v) in dst.iter_mut().zip(r) {
                    *d = if v > *d { v } else { *d };
                }
            }
        }
        ReduceOp::LogSumExp => {
            let mut m = vec![T::NEG_INFINITY; inner];
            for r in rows() {
                for (d, &v) in m.iter_mut().zip(r) {
                    *d = if v > *d { v } else { *d };
                }
            }
            dst.fill(T::ZERO);
            for r in rows() {
                for ((d, &v), &mx) in dst.iter_mut().zip(r).zip(&m) {
                    *d += (v - mx).fast_exp();
                }
            }
            for (d, mx) in dst.iter_mut().zip(m) {
                *d = if mx.is_finite() { d.ln() + mx } else { mx };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_axis_of_a_small_tensor() {
        // x[i][j][k] = 100i + 10j + k, shape [2, 3, 4]
        let s = Shape::new([2, 3, 4]);
        let x: Vec<f64> = (0..24)
            .map(|f| (100 * (f / 12) + 10 * ((f / 4) % 3) + f % 4) as f64)
            .collect();
        assert_eq!(reduce(&x, ReduceOp::Sum, &s, 0)[..2], [100.0, 102.0]);
        assert_eq!(
            reduce(&x, ReduceOp::Max, &s, 1)[..4],
            [20.0, 21.0, 22.0, 23.0]
        );
        assert_eq!(reduce(&x, ReduceOp::Sum, &s, 2)[..3], [6.0, 46.0, 86.0]);
        let lse = reduce(&x, ReduceOp::LogSumExp, &s, 2)[0];
        let want = (0..4).map(|k| (k as f64).exp()).sum::<f64>().ln();
        assert!((lse - want).abs() < 1e-12);
    }
}
