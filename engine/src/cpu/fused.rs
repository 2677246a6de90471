//! Fused elementwise kernels of a residual block: `relu(a + b)` in one pass (read both,
//! write once) instead of an add and a ReLU (two writes and a read back). The fused
//! batch-norm + ReLU kernels live with batch norm (`batch_norm.rs`).
use super::elementwise::PAR_MIN;
use super::simd::with_simd;
use crate::Float;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// `max(a + b, 0)` of two equal-length slices.
pub fn add_relu<T: Float>(a: &[T], b: &[T]) -> Vec<T> {
    assert_eq!(a.len(), b.len(), "add_relu of unequal lengths");
    // Not zeroed first: every value is written below, and zeroing is one more pass.
    let mut out = Vec::with_capacity(a.len());
    let spare = &mut out.spare_capacity_mut()[..a.len()];
    let run = |o: &mut [MaybeUninit<T>], a: &[T], b: &[T]| {
        with_simd(
            #[inline(always)]
            || {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    let s = x + y;
                    o.write(if s > T::ZERO { s } else { T::ZERO });
                }
            },
        )
    };
    if a.len() < PAR_MIN {
        run(spare, a, b);
    } else {
        spare
            .par_chunks_mut(PAR_MIN / 2)
            .zip(a.par_chunks(PAR_MIN / 2).zip(b.par_chunks(PAR_MIN / 2)))
            .for_each(|(o, (a, b))| run(o, a, b));
    }
    // SAFETY: the chunks cover all `a.len()` values and `run` wrote each.
    unsafe { out.set_len(a.len()) };
    out
}
