//! The SGD update as one fused loop over parameter, gradient and velocity.
use super::elementwise::PAR_MIN;
use super::simd::with_simd;
use crate::Float;
use rayon::prelude::*;

/// PyTorch's SGD: `v = momentum*v + (g + wd*p); p -= lr*v`.
pub fn sgd_update<T: Float>(p: &mut [T], g: &[T], v: &mut [T], lr: f64, momentum: f64, wd: f64) {
    let (lr, mu, wd) = (T::from_f64(lr), T::from_f64(momentum), T::from_f64(wd));
    let step = |p: &mut [T], g: &[T], v: &mut [T]| {
        with_simd(
            #[inline(always)]
            || {
                for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                    *v = mu * *v + (g + wd * *p);
                    *p = *p - lr * *v;
                }
            },
        )
    };
    if p.len() >= PAR_MIN {
        const CH: usize = 1 << 14;
        p.par_chunks_mut(CH)
            .zip(g.par_chunks(CH).zip(v.par_chunks_mut(CH)))
            .for_each(|(p, (g, v))| step(p, g, v));
    } else {
        step(p, g, v);
    }
}
