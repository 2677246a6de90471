//! Shapes, contiguous strides, broadcasting and axis normalisation.
use crate::error::{Error, Result};
use std::fmt;

/// The dimensions of a tensor, outermost first. Storage is always contiguous row-major.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }
    pub fn scalar() -> Self {
        Shape(vec![])
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }
    /// Turns a possibly negative axis into an index, or an error naming the op.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank();
        let a = if axis < 0 { axis + rank as isize } else { axis };
        if a < 0 || a as usize >= rank {
            return Err(Error::Axis { op, axis, rank });
        }
        Ok(a as usize)
    }
    /// The NumPy broadcast of two shapes (align on the right; a 1 stretches).
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
        let rank = a.rank().max(b.rank());
        let mut out = vec![0; rank];
        for (i, o) in out.iter_mut().enumerate() {
            let da = a.dim_from_right(rank - 1 - i);
            let db = b.dim_from_right(rank - 1 - i);
            *o = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(Error::Shape {
                        op,
                        msg: format!("cannot broadcast {a:?} with {b:?}"),
                    })
                }
            };
        }
        Ok(Shape(out))
    }
    /// Size of the `k`-th dimension counted from the right, 1 past the rank.
    fn dim_from_right(&self, k: usize) -> usize {
        if k < self.rank() {
            self.0[self.rank() - 1 - k]
        } else {
            1
        }
    }
    /// Strides (in elements of `self`) to read `self` as if broadcast to `target`: 0 on
    /// stretched dimensions. `target` must be a valid broadcast of `self`.
    pub fn broadcast_strides(&self, target: &Shape) -> Vec<usize> {
        let own = self.strides();
        let offset = target.rank() - self.rank();
        (0..target.rank())
            .map(|i| {
                if i < offset || self.0[i - offset] == 1 {
                    0
                } else {
                    own[i - offset]
                }
            })
            .collect()
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_aligns_right() {
        let s = Shape::broadcast("t", &Shape::new([4, 1, 3]), &Shape::new([5, 1])).unwrap();
        assert_eq!(s.dims(), &[4, 5, 3]);
        assert!(Shape::broadcast("t", &Shape::new([2, 3]), &Shape::new([4])).is_err());
    }

    #[test]
    fn strides_and_broadcast_strides() {
        assert_eq!(Shape::new([2, 3, 4]).strides(), vec![12, 4, 1]);
        let t = Shape::new([2, 3, 4]);
        assert_eq!(Shape::new([3, 1]).broadcast_strides(&t), vec![0, 1, 0]);
    }

    #[test]
    fn negative_axes() {
        let s = Shape::new([2, 3]);
        assert_eq!(s.axis("t", -1).unwrap(), 1);
        assert!(matches!(s.axis("t", 2), Err(Error::Axis { .. })));
    }
}
