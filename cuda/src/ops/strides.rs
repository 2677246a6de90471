//! Shapes and strides in the kernels' form: rank 6, right-aligned (`Dims6` in
//! `kernels/common.cuh`). Used by broadcasting binary ops and strided copies.

use super::kernel_count;
use crate::error::{shape_error, Result};

/// The kernels' fixed rank.
pub(crate) const MAX_RANK: usize = 6;

/// A rank-6 shape or stride list, matching the kernels' `struct Dims6 { unsigned int d[6]; }`.
pub(crate) type Dims6 = [u32; MAX_RANK];

/// Row-major strides of `shape`, in elements.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// NumPy broadcast of two shapes.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |shape: &[usize], d: usize| {
        if d + shape.len() >= rank {
            shape[d + shape.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|d| match (dim(a, d), dim(b, d)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(shape_error(format!(
                "shapes {a:?} and {b:?} do not broadcast"
            ))),
        })
        .collect()
}

/// Strides (in elements) with which a contiguous tensor of shape `input` is read when
/// broadcast to `output`: its own strides, 0 along broadcast dimensions, aligned right.
pub(crate) fn broadcast_strides(input: &[usize], output: &[usize]) -> Result<Vec<usize>> {
    if input.len() > output.len() {
        return Err(shape_error(format!(
            "{input:?} has more dimensions than {output:?}"
        )));
    }
    let own = contiguous_strides(input);
    let lead = output.len() - input.len();
    (0..output.len())
        .map(|d| {
            if d < lead {
                return Ok(0);
            }
            match input[d - lead] {
                n if n == output[d] => Ok(own[d - lead]),
                1 => Ok(0),
                _ => Err(shape_error(format!(
                    "{input:?} does not broadcast to {output:?}"
                ))),
            }
        })
        .collect()
}

/// `shape` and each operand's `strides` in the kernels' rank-6 form. Size-1 dimensions
/// are dropped and neighbours that every operand walks contiguously are merged, so fewer
/// divisions run per element and shapes of any rank fit as long as at most 6 dimensions
/// remain.
pub(crate) fn to_dims6<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
) -> Result<(Dims6, [Dims6; N])> {
    // Merged dims, innermost first: (size, stride per operand).
    let mut merged: Vec<(usize, [usize; N])> = Vec::new();
    for d in (0..shape.len()).rev() {
        if shape[d] == 1 {
            continue;
        }
        let dim_strides: [usize; N] = std::array::from_fn(|k| strides[k][d]);
        match merged.last_mut() {
            Some((size, inner)) if (0..N).all(|k| dim_strides[k] == inner[k] * *size) => {
                *size *= shape[d]
            }
            _ => merged.push((shape[d], dim_strides)),
        }
    }
    if merged.len() > MAX_RANK {
        return Err(shape_error(format!(
            "shape {shape:?} needs more than {MAX_RANK} dimensions after merging"
        )));
    }
    let mut dims = [1u32; MAX_RANK];
    let mut out = [[0u32; MAX_RANK]; N];
    for (i, (size, dim_strides)) in merged.iter().enumerate() {
        dims[MAX_RANK - 1 - i] = kernel_count("dimension", *size)?;
        for k in 0..N {
            out[k][MAX_RANK - 1 - i] = kernel_count("stride", dim_strides[k])?;
        }
    }
    Ok((dims, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape(&[4, 1, 3], &[5, 1]).unwrap(), vec![4, 5, 3]);
        assert!(broadcast_shape(&[2, 3], &[4, 3]).is_err());
        assert_eq!(
            broadcast_strides(&[5, 1], &[4, 5, 3]).unwrap(),
            vec![0, 1, 0]
        );
    }

    #[test]
    fn contiguous_operands_merge_to_one_dimension() {
        let shape = [2, 3, 4];
        let strides = contiguous_strides(&shape);
        let (dims, [s]) = to_dims6(&shape, [&strides]).unwrap();
        assert_eq!(dims, [1, 1, 1, 1, 1, 24]);
        assert_eq!(s, [0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn broadcast_dimension_stays_separate() {
        // a [2, 3, 4] + b [3, 1] -> b is read with strides [0, 1, 0].
        let out = [2, 3, 4];
        let a = contiguous_strides(&out);
        let b = broadcast_strides(&[3, 1], &out).unwrap();
        let (dims, [sa, sb]) = to_dims6(&out, [&a, &b]).unwrap();
        assert_eq!(dims, [1, 1, 1, 2, 3, 4]);
        assert_eq!(sa, [0, 0, 0, 12, 4, 1]);
        assert_eq!(sb, [0, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn high_rank_contiguous_shapes_fit() {
        let shape = [2, 2, 2, 2, 2, 2, 2, 2];
        let strides = contiguous_strides(&shape);
        assert!(to_dims6(&shape, [&strides]).is_ok());
    }
}
