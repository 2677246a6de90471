//! Shape kernels (the ops of `ops/shape.rs`): reshape is free (a shared buffer), so the
//! one kernel is permute, a strided copy. `strided_walk` is the loop it shares with the
//! strided slices of `index.rs`.
use crate::backend::StridedWalk;
use crate::{Float, Shape};

/// Visits every element of `walk`, yielding (output index, source offset).
pub(super) fn strided_walk(walk: &StridedWalk, mut visit: impl FnMut(usize, usize)) {
    let (dims, src_strides, base) = (&walk.dims[..], &walk.strides[..], walk.offset);
    let n: usize = dims.iter().product();
    if n == 0 {
        return;
    }
    let rank = dims.len();
    if rank == 0 {
        visit(0, base);
        return;
    }
    let inner = dims[rank - 1];
    let inner_stride = src_strides[rank - 1];
    let mut idx = vec![0usize; rank];
    let mut off = base;
    let mut o = 0;
    loop {
        for j in 0..inner {
            visit(o + j, off + j * inner_stride);
        }
        o += inner;
        // Odometer increment over the outer dimensions.
        let mut k = rank - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            off += src_strides[k];
            if idx[k] < dims[k] {
                break;
            }
            off -= src_strides[k] * dims[k];
            idx[k] = 0;
        }
    }
}

pub fn permute<T: Float>(x: &[T], shape: &Shape, perm: &[usize]) -> Vec<T> {
    let walk = StridedWalk::permute(shape, perm);
    let mut out = vec![T::ZERO; x.len()];
    strided_walk(&walk, |o, s| out[o] = x[s]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_transposes() {
        let x = [0.0f64, 1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(
            permute(&x, &Shape::new([2, 3]), &[1, 0]),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
    }
}
