//! conv2d kernels (to be written: im2col + GEMM).
use crate::backend::Conv2dParams;
use crate::Float;

pub fn conv2d<T: Float>(_x: &[T], _w: &[T], _p: &Conv2dParams) -> Vec<T> {
    todo!("conv2d forward")
}
pub fn conv2d_input_grad<T: Float>(_g: &[T], _w: &[T], _p: &Conv2dParams) -> Vec<T> {
    todo!("conv2d input grad")
}
pub fn conv2d_weight_grad<T: Float>(_g: &[T], _x: &[T], _p: &Conv2dParams) -> Vec<T> {
    todo!("conv2d weight grad")
}
