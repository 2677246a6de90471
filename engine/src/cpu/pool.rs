//! Pooling kernels (to be written).
use crate::backend::Pool2dParams;
use crate::Float;

pub fn max_pool2d<T: Float>(_x: &[T], _p: &Pool2dParams) -> Vec<T> {
    todo!()
}
pub fn max_pool2d_backward<T: Float>(_x: &[T], _g: &[T], _p: &Pool2dParams) -> Vec<T> {
    todo!()
}
pub fn avg_pool2d<T: Float>(_x: &[T], _p: &Pool2dParams) -> Vec<T> {
    todo!()
}
pub fn avg_pool2d_backward<T: Float>(_g: &[T], _p: &Pool2dParams) -> Vec<T> {
    todo!()
}
