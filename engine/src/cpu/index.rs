//! Indexing kernels (the ops of `ops/index.rs`): strided slices, channel padding,
//! index-select, gather, concat, and the scatter backwards that add the gradient back into
//! zeros of the input's shape.
use super::shape::strided_walk;
use crate::backend::{SliceRange, StridedWalk};
use crate::{Float, Shape};

pub fn slice<T: Float>(x: &[T], shape: &Shape, ranges: &[SliceRange]) -> Vec<T> {
    let walk = StridedWalk::slice(shape, ranges);
    let mut out = vec![T::ZERO; walk.dims.iter().product()];
    strided_walk(&walk, |o, s| out[o] = x[s]);
    out
}

pub fn slice_backward<T: Float>(g: &[T], shape: &Shape, ranges: &[SliceRange]) -> Vec<T> {
    let walk = StridedWalk::slice(shape, ranges);
    let mut out = vec![T::ZERO; shape.numel()];
    // `+=` so that a slice with step 0 (a broadcast read) would still sum correctly.
    strided_walk(&walk, |o, s| out[s] += g[o]);
    out
}

pub fn pad_channels<T: Float>(x: &[T], shape: &Shape, before: usize, after: usize) -> Vec<T> {
    let d = shape.dims();
    let (n, c, hw) = (d[0], d[1], d[2..].iter().product::<usize>());
    let c_out = c + before + after;
    let mut out = vec![T::ZERO; n * c_out * hw];
    for b in 0..n {
        let dst = &mut out[(b * c_out + before) * hw..(b * c_out + before + c) * hw];
        dst.copy_from_slice(&x[b * c * hw..(b + 1) * c * hw]);
    }
    out
}

/// `[outer, len, inner]` view of `shape` around `axis`.
fn split3(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let d = shape.dims();
    (
        d[..axis].iter().product(),
        d[axis],
        d[axis + 1..].iter().product(),
    )
}

pub fn index_select<T: Float>(x: &[T], shape: &Shape, axis: usize, idx: &[usize]) -> Vec<T> {
    let (outer, len, inner) = split3(shape, axis);
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let s = (o * len + i) * inner;
            out.extend_from_slice(&x[s..s + inner]);
        }
    }
    out
}

pub fn index_add<T: Float>(g: &[T], shape: &Shape, axis: usize, idx: &[usize]) -> Vec<T> {
    let (outer, len, inner) = split3(shape, axis);
    let mut out = vec![T::ZERO; shape.numel()];
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let src = &g[(o * idx.len() + j) * inner..][..inner];
            let dst = &mut out[(o * len + i) * inner..][..inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
    out
}

pub fn gather<T: Float>(
    x: &[T],
    shape: &Shape,
    axis: usize,
    idx: &[usize],
    ishape: &Shape,
) -> Vec<T> {
    let (_, len, inner) = split3(shape, axis);
    let (_, ilen, iinner) = split3(ishape, axis);
    idx.iter()
        .enumerate()
        .map(|(f, &i)| {
            let (o, r) = (f / (ilen * iinner), f % iinner);
            x[(o * len + i) * inner + r]
        })
        .collect()
}

pub fn scatter_add<T: Float>(
    g: &[T],
    shape: &Shape,
    axis: usize,
    idx: &[usize],
    ishape: &Shape,
) -> Vec<T> {
    let (_, len, inner) = split3(shape, axis);
    let (_, ilen, iinner) = split3(ishape, axis);
    let mut out = vec![T::ZERO; shape.numel()];
    for (f, &i) in idx.iter().enumerate() {
        let (o, r) = (f / (ilen * iinner), f % iinner);
        out[(o * len + i) * inner + r] += g[f];
    }
    out
}

pub fn concat<T: Float>(parts: &[&[T]], shapes: &[Shape], axis: usize) -> Vec<T> {
    let outer: usize = shapes[0].dims()[..axis].iter().product();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(total);
    let blocks: Vec<usize> = shapes
        .iter()
        .map(|s| s.dims()[axis..].iter().product())
        .collect();
    for o in 0..outer {
        for (p, &blk) in parts.iter().zip(&blocks) {
            out.extend_from_slice(&p[o * blk..(o + 1) * blk]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_slice_takes_every_second() {
        let x: Vec<f64> = (0..16).map(|v| v as f64).collect();
        let r = [
            SliceRange {
                start: 0,
                step: 2,
                len: 2,
            },
            SliceRange {
                start: 1,
                step: 2,
                len: 2,
            },
        ];
        assert_eq!(
            slice(&x, &Shape::new([4, 4]), &r),
            vec![1.0, 3.0, 9.0, 11.0]
        );
        let back = slice_backward(&[1.0, 2.0, 3.0, 4.0], &Shape::new([4, 4]), &r);
        assert_eq!(
            (
                back[1],
                back[3],
                back[9],
                back[11],
                back.iter().sum::<f64>()
            ),
            (1.0, 2.0, 3.0, 4.0, 10.0)
        );
    }

    #[test]
    fn gather_picks_per_row() {
        let x = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let g = gather(&x, &Shape::new([2, 3]), 1, &[2, 0], &Shape::new([2, 1]));
        assert_eq!(g, vec![3.0, 4.0]);
    }
}
