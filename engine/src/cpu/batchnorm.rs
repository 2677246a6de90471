//! Batch-norm kernels (to be written).
use crate::backend::{BatchNormDims, BatchNormStats};
use crate::Float;

pub fn forward_train<T: Float>(
    _x: &[T],
    _g: &[T],
    _b: &[T],
    _d: &BatchNormDims,
    _eps: f64,
) -> (Vec<T>, BatchNormStats<Vec<T>>) {
    todo!()
}
#[allow(clippy::too_many_arguments)]
pub fn forward_eval<T: Float>(
    _x: &[T],
    _g: &[T],
    _b: &[T],
    _m: &[T],
    _v: &[T],
    _d: &BatchNormDims,
    _eps: f64,
) -> Vec<T> {
    todo!()
}
pub fn backward<T: Float>(
    _gy: &[T],
    _x: &[T],
    _g: &[T],
    _m: &[T],
    _s: &[T],
    _d: &BatchNormDims,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    todo!()
}
