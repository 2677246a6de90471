//! The CUDA backend: [`BackendStorage`] for device memory, built with the `cuda` feature.
//!
//! Each method matches the dtype once and calls a generic function in the sibling module
//! named after the op family (mirroring `cpu/`), which allocates the output and queues the
//! kernels of `arbor-cuda` (`cuda/kernels/*.cu`) on the device's one stream. Nothing here
//! waits for the GPU except the copies to the host ([`CudaStorage::download`], and the
//! fused loss's check for non-finite logits).
//!
//! Buffers are reference-counted: cloning a storage (as `Tensor::assign` does) shares the
//! buffer, and the one in-place op, the SGD update, copies a shared buffer before writing.
mod batch_norm;
mod conv;
mod elementwise;
mod fused;
mod index;
mod loss;
mod matmul;
mod pool;
mod reduce;
mod registry;
mod sgd;
mod shape;
mod softmax;
mod storage;

pub use registry::device;
pub use storage::CudaStorage;

use crate::backend::*;
use crate::error::Error;
use crate::{DType, Device, Float, Result, Shape};
use arbor_cuda::ops::memory;
use storage::{gpu_err, zeros, CudaBuf, GpuFloat, GpuResult};

/// Runs `$body` with the type alias `$T` set to the storage's element type.
macro_rules! dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

impl BackendStorage for CudaStorage {
    fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }
    fn dtype(&self) -> DType {
        match self.buf {
            CudaBuf::F32(_) => DType::F32,
            CudaBuf::F64(_) => DType::F64,
        }
    }
    fn len(&self) -> usize {
        match &self.buf {
            CudaBuf::F32(s) => s.len(),
            CudaBuf::F64(s) => s.len(),
        }
    }
    fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.download()?.to_f64_vec()
    }
    fn cast(&self, dtype: DType) -> Result<Self> {
        let dev = &*self.dev;
        let err = gpu_err("cast");
        dispatch!(self.dtype(), Src => dispatch!(dtype, Dst => {
            let mut y = dev.alloc_zeros::<Dst>(self.len()).map_err(&err)?;
            memory::cast(dev, self.typed::<Src>("cast")?, &mut y).map_err(&err)?;
            Ok(self.with(y))
        }))
    }
    fn unary(&self, op: UnaryOp) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = elementwise::unary::<T>(&self.dev, self.typed("unary")?, op);
            Ok(self.with(y.map_err(gpu_err("unary"))?))
        })
    }
    fn binary(&self, rhs: &Self, op: BinaryOp, l: &Shape, r: &Shape, o: &Shape) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let b = self.operands::<T>("binary", &[rhs])?[0];
            let y = elementwise::binary(&self.dev, op, self.typed("binary")?, l, b, r, o);
            Ok(self.with(y.map_err(gpu_err("binary"))?))
        })
    }
    fn reduce(&self, op: ReduceOp, shape: &Shape, axis: usize) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = reduce::reduce_axis::<T>(&self.dev, self.typed("reduce")?, op, shape, axis);
            Ok(self.with(y.map_err(gpu_err("reduce"))?))
        })
    }
    fn matmul(&self, rhs: &Self, d: &MatmulDims) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let b = self.operands::<T>("matmul", &[rhs])?[0];
            let y = matmul::matmul::<T>(&self.dev, self.typed("matmul")?, b, d);
            Ok(self.with(y.map_err(gpu_err("matmul"))?))
        })
    }
    fn permute(&self, shape: &Shape, perm: &[usize]) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = shape::permute::<T>(&self.dev, self.typed("permute")?, shape, perm);
            Ok(self.with(y.map_err(gpu_err("permute"))?))
        })
    }
    fn slice(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = index::slice::<T>(&self.dev, self.typed("slice")?, shape, ranges);
            Ok(self.with(y.map_err(gpu_err("slice"))?))
        })
    }
    fn slice_backward(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = index::slice_backward::<T>(&self.dev, self.typed("slice")?, shape, ranges);
            Ok(self.with(y.map_err(gpu_err("slice"))?))
        })
    }
    fn pad_channels(&self, shape: &Shape, before: usize, after: usize) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let x = self.typed("pad_channels")?;
            let y = index::pad_channels::<T>(&self.dev, x, shape, before, after);
            Ok(self.with(y.map_err(gpu_err("pad_channels"))?))
        })
    }
    fn index_select(&self, shape: &Shape, axis: usize, idx: &[usize]) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let x = self.typed("index_select")?;
            let y = index::index_select::<T>(&self.dev, x, shape, axis, idx);
            Ok(self.with(y.map_err(gpu_err("index_select"))?))
        })
    }
    fn index_add(&self, shape: &Shape, axis: usize, idx: &[usize]) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let g = self.typed("index_select")?;
            let y = index::index_add::<T>(&self.dev, g, shape, axis, idx);
            Ok(self.with(y.map_err(gpu_err("index_select"))?))
        })
    }
    fn gather(&self, shape: &Shape, axis: usize, idx: &[usize], ishape: &Shape) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let x = self.typed("gather")?;
            let y = index::gather::<T>(&self.dev, x, shape, axis, idx, ishape);
            Ok(self.with(y.map_err(gpu_err("gather"))?))
        })
    }
    fn scatter_add(
        &self,
        shape: &Shape,
        axis: usize,
        idx: &[usize],
        ishape: &Shape,
    ) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let g = self.typed("gather")?;
            let y = index::scatter_add::<T>(&self.dev, g, shape, axis, idx, ishape);
            Ok(self.with(y.map_err(gpu_err("gather"))?))
        })
    }
    fn concat(parts: &[&Self], shapes: &[Shape], axis: usize) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(Error::Invalid {
                op: "concat",
                msg: "no tensors to join".into(),
            });
        };
        dispatch!(first.dtype(), T => {
            let typed = first.operands::<T>("concat", parts)?;
            let y = index::concat::<T>(&first.dev, &typed, shapes, axis);
            Ok(first.with(y.map_err(gpu_err("concat"))?))
        })
    }
    fn conv2d(&self, w: &Self, p: &Conv2dParams) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let w = self.operands::<T>("conv2d", &[w])?[0];
            let y = conv::forward::<T>(&self.dev, self.typed("conv2d")?, w, p);
            Ok(self.with(y.map_err(gpu_err("conv2d"))?))
        })
    }
    fn conv2d_input_grad(&self, w: &Self, p: &Conv2dParams) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let w = self.operands::<T>("conv2d", &[w])?[0];
            let y = conv::input_grad::<T>(&self.dev, self.typed("conv2d")?, w, p);
            Ok(self.with(y.map_err(gpu_err("conv2d"))?))
        })
    }
    fn conv2d_weight_grad(&self, x: &Self, p: &Conv2dParams) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let x = self.operands::<T>("conv2d", &[x])?[0];
            let y = conv::weight_grad::<T>(&self.dev, self.typed("conv2d")?, x, p);
            Ok(self.with(y.map_err(gpu_err("conv2d"))?))
        })
    }
    fn batch_norm2d_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormStats<Self>)> {
        dispatch!(self.dtype(), T => {
            let v = self.operands::<T>("batch_norm2d", &[self, gamma, beta])?;
            let (y, st) = batch_norm::train::<T>(&self.dev, v[0], v[1], v[2], dims, eps)
                .map_err(gpu_err("batch_norm2d"))?;
            let stats = self.with_stats(st);
            Ok((self.with(y), stats))
        })
    }
    fn batch_norm2d_eval(
        &self,
        gamma: &Self,
        beta: &Self,
        running_mean: &Self,
        running_var: &Self,
        dims: &BatchNormDims,
        eps: f64,
        relu: bool,
    ) -> Result<Self> {
        let all = [self, gamma, beta, running_mean, running_var];
        dispatch!(self.dtype(), T => {
            let v = self.operands::<T>("batch_norm2d", &all)?;
            let inputs = [v[0], v[1], v[2], v[3], v[4]];
            let y = if relu {
                fused::batch_norm2d_relu_eval::<T>(&self.dev, inputs, dims, eps)
            } else {
                batch_norm::eval::<T>(&self.dev, inputs, dims, eps)
            };
            Ok(self.with(y.map_err(gpu_err("batch_norm2d"))?))
        })
    }
    fn batch_norm2d_backward(
        &self,
        x: &Self,
        gamma: &Self,
        mean: &Self,
        inv_std: &Self,
        dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)> {
        let all = [self, x, gamma, mean, inv_std];
        dispatch!(self.dtype(), T => {
            let v = self.operands::<T>("batch_norm2d", &all)?;
            let (dx, dg, db) =
                batch_norm::backward::<T>(&self.dev, [v[0], v[1], v[2], v[3], v[4]], dims)
                    .map_err(gpu_err("batch_norm2d"))?;
            Ok((self.with(dx), self.with(dg), self.with(db)))
        })
    }
    fn add_relu(&self, rhs: &Self) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let b = self.operands::<T>("add_relu", &[rhs])?[0];
            let y = fused::add_relu::<T>(&self.dev, self.typed("add_relu")?, b);
            Ok(self.with(y.map_err(gpu_err("add_relu"))?))
        })
    }
    fn batch_norm2d_relu_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormReluStats<Self>)> {
        dispatch!(self.dtype(), T => {
            let v = self.operands::<T>("batch_norm2d_relu", &[self, gamma, beta])?;
            let (y, st) = fused::batch_norm2d_relu_train::<T>(&self.dev, v[0], v[1], v[2], dims, eps)
                .map_err(gpu_err("batch_norm2d_relu"))?;
            let y = self.with(y);
            let stats = self.with_stats(st);
            // The output is the mask's source; the clone shares its buffer.
            let mask_source = y.clone();
            Ok((y, BatchNormReluStats { stats, mask_source }))
        })
    }
    fn batch_norm2d_relu_backward(
        &self,
        x: &Self,
        gamma: &Self,
        beta: &Self,
        mean: &Self,
        inv_std: &Self,
        mask_source: &Self,
        dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)> {
        // beta is checked but unused: it only shapes the mask, here read off the output.
        let all = [self, x, gamma, beta, mean, inv_std, mask_source];
        dispatch!(self.dtype(), T => {
            let v = self.operands::<T>("batch_norm2d_relu", &all)?;
            let grads = [v[0], v[1], v[2], v[4], v[5]];
            let (dx, dg, db) = fused::batch_norm2d_relu_backward::<T>(&self.dev, grads, v[6], dims)
                .map_err(gpu_err("batch_norm2d_relu"))?;
            Ok((self.with(dx), self.with(dg), self.with(db)))
        })
    }
    fn max_pool2d(&self, p: &Pool2dParams) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = pool::max_forward::<T>(&self.dev, self.typed("max_pool2d")?, p);
            Ok(self.with(y.map_err(gpu_err("max_pool2d"))?.0))
        })
    }
    fn max_pool2d_backward(&self, grad: &Self, p: &Pool2dParams) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let g = self.operands::<T>("max_pool2d", &[grad])?[0];
            let y = pool::max_backward::<T>(&self.dev, self.typed("max_pool2d")?, g, p);
            Ok(self.with(y.map_err(gpu_err("max_pool2d"))?))
        })
    }
    fn avg_pool2d(&self, p: &Pool2dParams) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = pool::avg_forward::<T>(&self.dev, self.typed("avg_pool2d")?, p);
            Ok(self.with(y.map_err(gpu_err("avg_pool2d"))?))
        })
    }
    fn avg_pool2d_backward(&self, p: &Pool2dParams) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = pool::avg_backward::<T>(&self.dev, self.typed("avg_pool2d")?, p);
            Ok(self.with(y.map_err(gpu_err("avg_pool2d"))?))
        })
    }
    fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let y = softmax::forward::<T>(&self.dev, self.typed("softmax")?, rows, cols, log);
            Ok(self.with(y.map_err(gpu_err("softmax"))?))
        })
    }
    fn softmax_rows_backward(&self, g: &Self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        dispatch!(self.dtype(), T => {
            let dy = self.operands::<T>("softmax", &[g])?[0];
            let y = self.typed("softmax")?;
            let dx = softmax::backward::<T>(&self.dev, y, dy, rows, cols, log);
            Ok(self.with(dx.map_err(gpu_err("softmax"))?))
        })
    }
    fn fused_loss(
        &self,
        dense_target: Option<&Self>,
        p: &FusedLossParams,
    ) -> Result<FusedLossOut<Self>> {
        dispatch!(self.dtype(), T => {
            let dense = match dense_target {
                Some(t) => Some(self.operands::<T>("fused_loss", &[t])?[0]),
                None => None,
            };
            let (row_loss, grad) =
                loss::fused_loss::<T>(&self.dev, self.typed("fused_loss")?, dense, p)?;
            Ok(FusedLossOut {
                row_loss: self.with(row_loss),
                grad: self.with(grad),
            })
        })
    }
    fn sgd_update(
        &mut self,
        grad: &Self,
        velocity: &mut Self,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> Result<()> {
        self.same_gpu("sgd", grad)?;
        self.same_gpu("sgd", velocity)?;
        let (pd, gd, vd) = (self.dtype(), grad.dtype(), velocity.dtype());
        let mismatch = || Error::DType {
            op: "sgd",
            msg: format!("parameter {pd}, gradient {gd}, velocity {vd}"),
        };
        let dev = self.dev.clone();
        dispatch!(pd, T => {
            let g = grad.typed::<T>("sgd").map_err(|_| mismatch())?;
            let p = T::typed_mut(&mut self.buf).ok_or_else(mismatch)?;
            let v = T::typed_mut(&mut velocity.buf).ok_or_else(mismatch)?;
            let step = arbor_cuda::ops::sgd::SgdStep {
                lr: T::from_f64(lr),
                momentum: T::from_f64(momentum),
                weight_decay: T::from_f64(weight_decay),
            };
            sgd::sgd_step(&dev, p, g, v, step).map_err(gpu_err("sgd"))
        })
    }
}
