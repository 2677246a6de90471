//! The CUDA storage when arbor is built without the `cuda` feature: a type with no
//! values. Every `Storage::Cuda` arm is therefore unreachable, and asking for a CUDA tensor
//! fails earlier with a clear device error (see `Tensor::to_device`).
use crate::backend::*;
use crate::error::Error;
use crate::{DType, Device, Result, Shape};

/// Uninhabited: no CUDA buffer can exist in a build without the `cuda` feature.
#[derive(Debug, Clone)]
pub enum CudaStorage {}

impl BackendStorage for CudaStorage {
    fn device(&self) -> Device {
        match *self {}
    }
    fn dtype(&self) -> DType {
        match *self {}
    }
    fn len(&self) -> usize {
        match *self {}
    }
    fn to_f64_vec(&self) -> Result<Vec<f64>> {
        match *self {}
    }
    fn cast(&self, _dtype: DType) -> Result<Self> {
        match *self {}
    }
    fn unary(&self, _op: UnaryOp) -> Result<Self> {
        match *self {}
    }
    fn binary(
        &self,
        _rhs: &Self,
        _op: BinaryOp,
        _lhs: &Shape,
        _rhs_shape: &Shape,
        _out: &Shape,
    ) -> Result<Self> {
        match *self {}
    }
    fn reduce(&self, _op: ReduceOp, _shape: &Shape, _axis: usize) -> Result<Self> {
        match *self {}
    }
    fn matmul(&self, _rhs: &Self, _dims: &MatmulDims) -> Result<Self> {
        match *self {}
    }
    fn permute(&self, _shape: &Shape, _perm: &[usize]) -> Result<Self> {
        match *self {}
    }
    fn slice(&self, _shape: &Shape, _ranges: &[SliceRange]) -> Result<Self> {
        match *self {}
    }
    fn slice_backward(&self, _shape: &Shape, _ranges: &[SliceRange]) -> Result<Self> {
        match *self {}
    }
    fn pad_channels(&self, _shape: &Shape, _before: usize, _after: usize) -> Result<Self> {
        match *self {}
    }
    fn index_select(&self, _shape: &Shape, _axis: usize, _indices: &[usize]) -> Result<Self> {
        match *self {}
    }
    fn index_add(&self, _shape: &Shape, _axis: usize, _indices: &[usize]) -> Result<Self> {
        match *self {}
    }
    fn gather(
        &self,
        _shape: &Shape,
        _axis: usize,
        _indices: &[usize],
        _idx_shape: &Shape,
    ) -> Result<Self> {
        match *self {}
    }
    fn scatter_add(
        &self,
        _shape: &Shape,
        _axis: usize,
        _indices: &[usize],
        _idx_shape: &Shape,
    ) -> Result<Self> {
        match *self {}
    }
    fn concat(_parts: &[&Self], _shapes: &[Shape], _axis: usize) -> Result<Self> {
        Err(Error::Device {
            op: "concat",
            msg: "arbor was built without the `cuda` feature".into(),
        })
    }
    fn conv2d(&self, _weight: &Self, _p: &Conv2dParams) -> Result<Self> {
        match *self {}
    }
    fn conv2d_input_grad(&self, _weight: &Self, _p: &Conv2dParams) -> Result<Self> {
        match *self {}
    }
    fn conv2d_weight_grad(&self, _input: &Self, _p: &Conv2dParams) -> Result<Self> {
        match *self {}
    }
    fn batch_norm2d_train(
        &self,
        _gamma: &Self,
        _beta: &Self,
        _dims: &BatchNormDims,
        _eps: f64,
    ) -> Result<(Self, BatchNormStats<Self>)> {
        match *self {}
    }
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_eval(
        &self,
        _gamma: &Self,
        _beta: &Self,
        _running_mean: &Self,
        _running_var: &Self,
        _dims: &BatchNormDims,
        _eps: f64,
        _relu: bool,
    ) -> Result<Self> {
        match *self {}
    }
    fn batch_norm2d_backward(
        &self,
        _x: &Self,
        _gamma: &Self,
        _mean: &Self,
        _inv_std: &Self,
        _dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)> {
        match *self {}
    }
    fn add_relu(&self, _rhs: &Self) -> Result<Self> {
        match *self {}
    }
    fn batch_norm2d_relu_train(
        &self,
        _gamma: &Self,
        _beta: &Self,
        _dims: &BatchNormDims,
        _eps: f64,
    ) -> Result<(Self, BatchNormReluStats<Self>)> {
        match *self {}
    }
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_relu_backward(
        &self,
        _x: &Self,
        _gamma: &Self,
        _beta: &Self,
        _mean: &Self,
        _inv_std: &Self,
        _mask_source: &Self,
        _dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)> {
        match *self {}
    }
    fn max_pool2d(&self, _p: &Pool2dParams) -> Result<Self> {
        match *self {}
    }
    fn max_pool2d_backward(&self, _grad: &Self, _p: &Pool2dParams) -> Result<Self> {
        match *self {}
    }
    fn avg_pool2d(&self, _p: &Pool2dParams) -> Result<Self> {
        match *self {}
    }
    fn avg_pool2d_backward(&self, _p: &Pool2dParams) -> Result<Self> {
        match *self {}
    }
    fn softmax_rows(&self, _rows: usize, _cols: usize, _log: bool) -> Result<Self> {
        match *self {}
    }
    fn softmax_rows_backward(
        &self,
        _grad: &Self,
        _rows: usize,
        _cols: usize,
        _log: bool,
    ) -> Result<Self> {
        match *self {}
    }
    fn fused_loss(
        &self,
        _dense_target: Option<&Self>,
        _p: &FusedLossParams,
    ) -> Result<FusedLossOut<Self>> {
        match *self {}
    }
    fn sgd_update(
        &mut self,
        _grad: &Self,
        _velocity: &mut Self,
        _lr: f64,
        _momentum: f64,
        _weight_decay: f64,
    ) -> Result<()> {
        match *self {}
    }
}
