//! What the trait's methods take and give back beside storages: the geometry of matmul,
//! slices and permutes, conv, pooling and batch norm, and batch norm's saved statistics.
use crate::Shape;

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

/// What batch_norm2d_relu's training forward returns beside `y`: batch norm's statistics,
/// and `mask_source`, what this backend keeps to know, in the backward, which outputs the
/// ReLU zeroed. The CPU keeps the exact per-channel `gamma inv_std` it multiplied by (`[c]`:
/// its backward recomputes `z > 0` from `x`, bit for bit, so no activation is stored);
/// CUDA keeps the output `y` itself (its buffer shared, not copied; the mask is `y > 0`).
pub struct BatchNormReluStats<S> {
    pub stats: BatchNormStats<S>,
    pub mask_source: S,
}
