//! The backend trait: its methods *are* the primitive ops every device must implement,
//! so the compiler keeps the CPU and CUDA backends in sync. Composite ops (linear,
//! cross-entropy, global average pooling...) are built from these in `ops/`.
//!
//! Storages are flat and contiguous; shapes travel beside them as arguments.
use crate::{DType, Device, Result, Shape};

mod fused_loss;
mod params;

pub use fused_loss::{FusedLossOut, FusedLossParams};
pub use params::{
    BatchNormDims, BatchNormReluStats, BatchNormStats, Conv2dParams, MatmulDims, Pool2dParams,
    SliceRange, StridedWalk,
};

/// Elementwise ops of one input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Relu,
    Clamp {
        lo: f64,
        hi: f64,
    },
    /// `x^p` for a scalar `p`.
    Powf(f64),
    /// `mul * x + add`: scalar arithmetic without materialising a scalar tensor.
    Affine {
        mul: f64,
        add: f64,
    },
}

/// Elementwise ops of two broadcast inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// 1 where equal, else 0 (used by the max backward).
    Eq,
    /// `rhs` where `lhs > 0`, else 0: relu's backward with `lhs = x`, `rhs = grad`.
    ReluGrad,
    /// `rhs` where `lo <= lhs <= hi`, else 0: clamp's backward.
    ClampGrad {
        lo: f64,
        hi: f64,
    },
}

/// Reductions over one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    LogSumExp,
}

/// The primitive ops. `Self` is a device's flat storage.
pub trait BackendStorage: Sized + Send + Sync {
    fn device(&self) -> Device;
    fn dtype(&self) -> DType;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values, converted to f64 and copied to the host.
    fn to_f64_vec(&self) -> Result<Vec<f64>>;
    fn cast(&self, dtype: DType) -> Result<Self>;

    fn unary(&self, op: UnaryOp) -> Result<Self>;
    fn binary(
        &self,
        rhs: &Self,
        op: BinaryOp,
        lhs: &Shape,
        rhs_shape: &Shape,
        out: &Shape,
    ) -> Result<Self>;
    /// Reduces `axis` of `shape` to size 1.
    fn reduce(&self, op: ReduceOp, shape: &Shape, axis: usize) -> Result<Self>;
    fn matmul(&self, rhs: &Self, dims: &MatmulDims) -> Result<Self>;

    /// Copies with the axes reordered: output axis `i` is input axis `perm[i]`.
    fn permute(&self, shape: &Shape, perm: &[usize]) -> Result<Self>;
    fn slice(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self>;
    /// The slice's backward: `self` (shaped as the slice) scattered into zeros of `shape`.
    fn slice_backward(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self>;
    /// Zero channels added before and after, NCHW (the ResNet option-A shortcut).
    fn pad_channels(&self, shape: &Shape, before: usize, after: usize) -> Result<Self>;
    /// Picks `indices` along `axis`.
    fn index_select(&self, shape: &Shape, axis: usize, indices: &[usize]) -> Result<Self>;
    /// index_select's backward: `self` (the selected grad) summed into zeros of `shape`.
    fn index_add(&self, shape: &Shape, axis: usize, indices: &[usize]) -> Result<Self>;
    /// `out[.., j, ..] = x[.., indices[.., j, ..], ..]` along `axis` (PyTorch's gather);
    /// `indices` has the output's shape `idx_shape`.
    fn gather(
        &self,
        shape: &Shape,
        axis: usize,
        indices: &[usize],
        idx_shape: &Shape,
    ) -> Result<Self>;
    /// gather's backward: `self` (shaped `idx_shape`) summed into zeros of `shape`.
    fn scatter_add(
        &self,
        shape: &Shape,
        axis: usize,
        indices: &[usize],
        idx_shape: &Shape,
    ) -> Result<Self>;
    /// Joins `parts` (of `shapes`) along `axis`.
    fn concat(parts: &[&Self], shapes: &[Shape], axis: usize) -> Result<Self>;

    fn conv2d(&self, weight: &Self, p: &Conv2dParams) -> Result<Self>;
    /// dL/dx from dL/dy (`self`).
    fn conv2d_input_grad(&self, weight: &Self, p: &Conv2dParams) -> Result<Self>;
    /// dL/dW from dL/dy (`self`).
    fn conv2d_weight_grad(&self, input: &Self, p: &Conv2dParams) -> Result<Self>;

    fn batch_norm2d_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormStats<Self>)>;
    /// The evaluation forward from the running statistics, then `max(y, 0)` in the same
    /// pass when `relu` (`batch_norm2d_relu` in evaluation; there is no backward).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_eval(
        &self,
        gamma: &Self,
        beta: &Self,
        running_mean: &Self,
        running_var: &Self,
        dims: &BatchNormDims,
        eps: f64,
        relu: bool,
    ) -> Result<Self>;
    /// Returns (dx, dgamma, dbeta) from dL/dy (`self`) and the training forward's saved values.
    fn batch_norm2d_backward(
        &self,
        x: &Self,
        gamma: &Self,
        mean: &Self,
        inv_std: &Self,
        dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)>;

    /// The fused ops of a ResNet block (`ops/fused.rs`). `max(self + rhs, 0)` of two
    /// storages of one shape, in one pass. Its backward is relu's: `BinaryOp::ReluGrad` with
    /// the output as the mask.
    fn add_relu(&self, rhs: &Self) -> Result<Self>;
    /// `max(batch_norm2d_train(..), 0)` in one pass; beside `y` the statistics and the
    /// backend's `mask_source` for the backward.
    fn batch_norm2d_relu_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormReluStats<Self>)>;
    /// (dx, dgamma, dbeta) from dL/dy (`self`): batch_norm2d_backward of `dy [z > 0]`, the
    /// mask recovered from the training forward's `mask_source`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_relu_backward(
        &self,
        x: &Self,
        gamma: &Self,
        beta: &Self,
        mean: &Self,
        inv_std: &Self,
        mask_source: &Self,
        dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)>;

    fn max_pool2d(&self, p: &Pool2dParams) -> Result<Self>;
    /// dL/dx from the input `self` and dL/dy; the argmax is recomputed, not stored.
    fn max_pool2d_backward(&self, grad: &Self, p: &Pool2dParams) -> Result<Self>;
    /// Average pooling; padding counts as zeros in the average (PyTorch's default).
    fn avg_pool2d(&self, p: &Pool2dParams) -> Result<Self>;
    fn avg_pool2d_backward(&self, p: &Pool2dParams) -> Result<Self>;

    /// Softmax (or log-softmax) over the last axis of a `[rows, cols]` view.
    fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self>;
    /// Backward from the forward's *output* `self` and dL/dy.
    fn softmax_rows_backward(
        &self,
        grad: &Self,
        rows: usize,
        cols: usize,
        log: bool,
    ) -> Result<Self>;

    /// The fused classification loss (ARB-Loss and its baselines): loss and gradient of
    /// every row in one pass over the `[rows, cols]` logits `self`; `dense_target` holds
    /// soft-target rows when `p.labels` is empty. A non-finite logit is an error naming it.
    fn fused_loss(
        &self,
        dense_target: Option<&Self>,
        p: &FusedLossParams,
    ) -> Result<FusedLossOut<Self>>;

    /// SGD with momentum and weight decay, PyTorch's rule, in place:
    /// `v = momentum*v + (g + wd*p); p -= lr*v`.
    fn sgd_update(
        &mut self,
        grad: &Self,
        velocity: &mut Self,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> Result<()>;
}
