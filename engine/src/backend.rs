//! The backend trait: its methods *are* the primitive ops every device must implement,
//! so the compiler keeps the CPU and CUDA backends in sync. Composite ops (linear,
//! cross-entropy, global average pooling...) are built from these in `ops/`.
//!
//! Storages are flat and contiguous; shapes travel beside them as arguments.
use crate::{DType, Device, Result, Shape};

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

/// A (batched) matrix product `C[b] = op(A[b]) op(B[b])`, `op` an optional transpose.
/// A batch stride of 0 broadcasts that operand across the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Whether the stored lhs is `[k, m]` (read transposed) rather than `[m, k]`.
    pub lhs_transposed: bool,
    /// Whether the stored rhs is `[n, k]` (read transposed) rather than `[k, n]`.
    pub rhs_transposed: bool,
    pub lhs_batch_stride: usize,
    pub rhs_batch_stride: usize,
}

/// One axis of a strided slice: `len` elements from `start`, every `step`-th.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceRange {
    pub start: usize,
    pub step: usize,
    pub len: usize,
}

/// A strided read of a buffer: `dims` visited in row-major order, stepping `strides` (in the
/// buffer's elements) from `offset`. A slice and a permute are each one such read; both
/// backends take their geometry from here so the index math exists once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedWalk {
    pub dims: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl StridedWalk {
    /// The slice `ranges` of a contiguous `shape`.
    pub fn slice(shape: &Shape, ranges: &[SliceRange]) -> Self {
        let strides = shape.strides();
        StridedWalk {
            dims: ranges.iter().map(|r| r.len).collect(),
            strides: ranges
                .iter()
                .zip(&strides)
                .map(|(r, s)| r.step * s)
                .collect(),
            offset: ranges.iter().zip(&strides).map(|(r, s)| r.start * s).sum(),
        }
    }
    /// A contiguous `shape` read with its axes reordered: output axis `i` is input `perm[i]`.
    pub fn permute(shape: &Shape, perm: &[usize]) -> Self {
        let strides = shape.strides();
        StridedWalk {
            dims: perm.iter().map(|&p| shape.dims()[p]).collect(),
            strides: perm.iter().map(|&p| strides[p]).collect(),
            offset: 0,
        }
    }
}

/// Geometry of a 2-D convolution over NCHW input and `[c_out, c_in, kh, kw]` weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub batch: usize,
    pub c_in: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Conv2dParams {
    pub fn h_out(&self) -> usize {
        (self.h_in + 2 * self.padding.0 - self.kh) / self.stride.0 + 1
    }
    pub fn w_out(&self) -> usize {
        (self.w_in + 2 * self.padding.1 - self.kw) / self.stride.1 + 1
    }
    /// Multiply-adds of the forward pass times two.
    pub fn forward_flops(&self) -> u64 {
        2 * (self.batch * self.c_out * self.h_out() * self.w_out() * self.c_in * self.kh * self.kw)
            as u64
    }
}

/// Geometry of a 2-D pooling window over NCHW input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    pub batch: usize,
    pub channels: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Pool2dParams {
    pub fn h_out(&self) -> usize {
        (self.h_in + 2 * self.padding.0 - self.kernel.0) / self.stride.0 + 1
    }
    pub fn w_out(&self) -> usize {
        (self.w_in + 2 * self.padding.1 - self.kernel.1) / self.stride.1 + 1
    }
}

/// Batch-norm geometry: NCHW viewed as `[n, c, hw]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormDims {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

/// What batch_norm2d's training forward returns beside `y`: the batch mean and the biased
/// batch variance per channel (the caller updates the running statistics from them), and
/// `1/sqrt(var + eps)`, saved for the backward.
pub struct BatchNormStats<S> {
    pub mean: S,
    pub var: S,
    pub inv_std: S,
}

/// What the fused loss kernel needs to know, in per-class and per-row terms (the op in
/// `ops/loss` builds it from a loss configuration). For row `i` the kernel forms
///
/// ```text
/// u_ij = scale * clamp(z_ij) + offset_j          (offset_j = -inf drops class j)
/// ```
///
/// and writes `grad_scale * dl_i/dz_i` once, where `l_i` is row `i`'s loss:
/// - hard targets (`labels` non-empty): `per_row` components `(c, coef)` per row;
///   component `k` is the cross-entropy of `u` with `margins[c]` (times `scale`) taken off
///   the target logit, optionally focal (`(1 - p)^gamma`), and label smoothing `smoothing`
///   mixes a uniform target in: `l_i = sum_k coef_k ((1 - eps) L_k + eps (lse(u) - mean_j u_j))`;
/// - dense targets (`labels` empty, a `[rows, cols]` target storage given):
///   `l_i = sum_j w_j t_ij (lse(u_i) - u_ij)`, `w` = `weights` (or 1).
#[derive(Clone, Copy, Debug)]
pub struct FusedLossParams<'a> {
    pub rows: usize,
    pub cols: usize,
    /// Target classes, `per_row` per row, row-major (empty for dense targets).
    pub labels: &'a [usize],
    /// One coefficient per entry of `labels`.
    pub coefs: &'a [f64],
    pub per_row: usize,
    /// Additive logit offset per class (`cols` values; `-inf` drops the class), or empty for 0.
    pub offsets: &'a [f64],
    /// Margin per class subtracted from the target logit (before `scale`), or empty.
    pub margins: &'a [f64],
    /// Per-class weight of a dense target, or empty for 1.
    pub weights: &'a [f64],
    pub scale: f64,
    /// Logits are clamped into `[-clamp, clamp]`; no gradient flows from outside it.
    pub clamp: Option<f64>,
    pub gamma: f64,
    pub smoothing: f64,
    /// Multiplies the written gradient (so a mean's `1/B` costs no extra pass).
    pub grad_scale: f64,
}

impl FusedLossParams<'_> {
    /// Most target components per row a kernel accepts (mixup's two labels).
    pub const MAX_COMPONENTS: usize = 2;

    /// One hard label per row and no margins, focal term or smoothing (ARB, cross-entropy,
    /// balanced softmax, class-balanced weights): the case kernels special-case.
    pub fn is_plain_hard(&self) -> bool {
        self.per_row == 1
            && !self.labels.is_empty()
            && self.margins.is_empty()
            && self.gamma == 0.0
            && self.smoothing == 0.0
    }

    /// Checks that the parameters agree with the logits (`z_len` values) and the dense
    /// target (`dense_len`), before any backend indexes with them (labels become indices).
    pub fn validate(&self, z_len: usize, dense_len: Option<usize>) -> Result<()> {
        let n = self.rows * self.cols;
        let per_class_ok = |v: &[f64]| v.is_empty() || v.len() == self.cols;
        let bad = if z_len != n {
            Some(format!("{z_len} logits for [{}, {}]", self.rows, self.cols))
        } else if !(per_class_ok(self.offsets)
            && per_class_ok(self.margins)
            && per_class_ok(self.weights))
        {
            Some(format!(
                "per-class parameters must have {} entries",
                self.cols
            ))
        } else if let Some(len) = dense_len {
            (len != n).then(|| format!("{len} target values for [{}, {}]", self.rows, self.cols))
        } else if !(1..=Self::MAX_COMPONENTS).contains(&self.per_row)
            || self.labels.len() != self.rows * self.per_row
            || self.coefs.len() != self.labels.len()
        {
            Some(format!(
                "{} labels and {} coefficients for {} rows of {} components",
                self.labels.len(),
                self.coefs.len(),
                self.rows,
                self.per_row
            ))
        } else {
            self.labels
                .iter()
                .find(|&&c| c >= self.cols)
                .map(|c| format!("label {c} out of range for {} classes", self.cols))
        };
        match bad {
            Some(msg) => Err(crate::Error::Invalid {
                op: "fused_loss",
                msg,
            }),
            None => Ok(()),
        }
    }
}

/// What the fused loss kernel returns: each row's loss (`[rows]`) and the gradient of
/// the rows' losses w.r.t. the logits, times `grad_scale` (`[rows, cols]`).
pub struct FusedLossOut<S> {
    pub row_loss: S,
    pub grad: S,
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
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_eval(
        &self,
        gamma: &Self,
        beta: &Self,
        running_mean: &Self,
        running_var: &Self,
        dims: &BatchNormDims,
        eps: f64,
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
