//! The CPU backend: [`BackendStorage`] for host memory. Each method matches the dtype once
//! and calls a generic kernel in the sibling module named after the op.
pub mod batch_norm;
pub mod conv;
pub mod elementwise;
pub mod fused;
pub mod index;
pub mod loss;
pub mod matmul;
pub mod pool;
pub mod reduce;
pub mod sgd;
pub mod shape;
pub mod simd;
pub mod softmax;
mod storage;

pub use storage::CpuStorage;

use crate::backend::*;
use crate::error::Error;
use crate::{DType, Device, Result, Shape};

/// `match` on the dtype of one storage, run `$body` with `$v` bound to the typed slice, and
/// wrap the returned `Vec` back into a storage of the same dtype.
macro_rules! map1 {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            CpuStorage::F32($v) => CpuStorage::F32($body),
            CpuStorage::F64($v) => CpuStorage::F64($body),
        }
    };
}

/// The same for two storages that must share a dtype.
macro_rules! map2 {
    ($op:expr, $a:expr, $b:expr, $x:ident, $y:ident => $body:expr) => {
        match ($a, $b) {
            (CpuStorage::F32($x), CpuStorage::F32($y)) => CpuStorage::F32($body),
            (CpuStorage::F64($x), CpuStorage::F64($y)) => CpuStorage::F64($body),
            (a, b) => return Err(dtype_mismatch($op, a.dtype(), b.dtype())),
        }
    };
}

fn dtype_mismatch(op: &'static str, a: DType, b: DType) -> Error {
    Error::DType {
        op,
        msg: format!("operands are {a} and {b}"),
    }
}

/// Typed slices of several storages that must all be `T`.
fn typed<'a, T: crate::Float>(op: &'static str, parts: &[&'a CpuStorage]) -> Result<Vec<&'a [T]>> {
    parts
        .iter()
        .map(|p| {
            p.as_slice::<T>()
                .ok_or_else(|| dtype_mismatch(op, T::DTYPE, p.dtype()))
        })
        .collect()
}

impl BackendStorage for CpuStorage {
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }
    fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }
    fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(match self {
            CpuStorage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            CpuStorage::F64(v) => v.clone(),
        })
    }
    fn cast(&self, dtype: DType) -> Result<Self> {
        Ok(match (self, dtype) {
            (CpuStorage::F32(v), DType::F64) => {
                CpuStorage::F64(v.iter().map(|&x| x as f64).collect())
            }
            (CpuStorage::F64(v), DType::F32) => {
                CpuStorage::F32(v.iter().map(|&x| x as f32).collect())
            }
            (s, _) => s.clone(),
        })
    }
    fn unary(&self, op: UnaryOp) -> Result<Self> {
        Ok(map1!(self, v => elementwise::unary(v, op)))
    }
    fn binary(&self, rhs: &Self, op: BinaryOp, l: &Shape, r: &Shape, o: &Shape) -> Result<Self> {
        Ok(map2!("binary", self, rhs, a, b => elementwise::binary(a, b, op, l, r, o)))
    }
    fn reduce(&self, op: ReduceOp, shape: &Shape, axis: usize) -> Result<Self> {
        Ok(map1!(self, v => reduce::reduce(v, op, shape, axis)))
    }
    fn matmul(&self, rhs: &Self, dims: &MatmulDims) -> Result<Self> {
        Ok(map2!("matmul", self, rhs, a, b => matmul::matmul(a, b, dims)))
    }
    fn permute(&self, shape: &Shape, perm: &[usize]) -> Result<Self> {
        Ok(map1!(self, v => shape::permute(v, shape, perm)))
    }
    fn slice(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self> {
        Ok(map1!(self, v => index::slice(v, shape, ranges)))
    }
    fn slice_backward(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self> {
        Ok(map1!(self, v => index::slice_backward(v, shape, ranges)))
    }
    fn pad_channels(&self, shape: &Shape, before: usize, after: usize) -> Result<Self> {
        Ok(map1!(self, v => index::pad_channels(v, shape, before, after)))
    }
    fn index_select(&self, shape: &Shape, axis: usize, idx: &[usize]) -> Result<Self> {
        Ok(map1!(self, v => index::index_select(v, shape, axis, idx)))
    }
    fn index_add(&self, shape: &Shape, axis: usize, idx: &[usize]) -> Result<Self> {
        Ok(map1!(self, v => index::index_add(v, shape, axis, idx)))
    }
    fn gather(&self, shape: &Shape, axis: usize, idx: &[usize], ishape: &Shape) -> Result<Self> {
        Ok(map1!(self, v => index::gather(v, shape, axis, idx, ishape)))
    }
    fn scatter_add(
        &self,
        shape: &Shape,
        axis: usize,
        idx: &[usize],
        ishape: &Shape,
    ) -> Result<Self> {
        Ok(map1!(self, v => index::scatter_add(v, shape, axis, idx, ishape)))
    }
    fn concat(parts: &[&Self], shapes: &[Shape], axis: usize) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(Error::Invalid {
                op: "concat",
                msg: "no tensors to join".into(),
            });
        };
        Ok(match first.dtype() {
            DType::F32 => {
                CpuStorage::F32(index::concat(&typed::<f32>("concat", parts)?, shapes, axis))
            }
            DType::F64 => {
                CpuStorage::F64(index::concat(&typed::<f64>("concat", parts)?, shapes, axis))
            }
        })
    }
    fn conv2d(&self, w: &Self, p: &Conv2dParams) -> Result<Self> {
        Ok(map2!("conv2d", self, w, x, w => conv::conv2d(x, w, p)))
    }
    fn conv2d_input_grad(&self, w: &Self, p: &Conv2dParams) -> Result<Self> {
        Ok(map2!("conv2d", self, w, g, w => conv::conv2d_input_grad(g, w, p)))
    }
    fn conv2d_weight_grad(&self, x: &Self, p: &Conv2dParams) -> Result<Self> {
        Ok(map2!("conv2d", self, x, g, x => conv::conv2d_weight_grad(g, x, p)))
    }
    fn batch_norm2d_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormStats<Self>)> {
        macro_rules! go {
            ($t:ty, $variant:ident) => {{
                let v = typed::<$t>("batch_norm2d", &[self, gamma, beta])?;
                let (y, s) = batch_norm::forward_train(v[0], v[1], v[2], dims, eps);
                (
                    CpuStorage::$variant(y),
                    BatchNormStats {
                        mean: CpuStorage::$variant(s.mean),
                        var: CpuStorage::$variant(s.var),
                        inv_std: CpuStorage::$variant(s.inv_std),
                    },
                )
            }};
        }
        Ok(match self.dtype() {
            DType::F32 => go!(f32, F32),
            DType::F64 => go!(f64, F64),
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
        macro_rules! go {
            ($t:ty, $variant:ident) => {{
                let v = typed::<$t>("batch_norm2d", &all)?;
                let stats = [v[1], v[2], v[3], v[4]];
                CpuStorage::$variant(batch_norm::forward_eval_act(v[0], stats, dims, eps, relu))
            }};
        }
        Ok(match self.dtype() {
            DType::F32 => go!(f32, F32),
            DType::F64 => go!(f64, F64),
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
        Ok(match self.dtype() {
            DType::F32 => {
                let v = typed::<f32>("batch_norm2d", &all)?;
                let (a, b, c) = batch_norm::backward(v[0], v[1], v[2], v[3], v[4], dims);
                (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c))
            }
            DType::F64 => {
                let v = typed::<f64>("batch_norm2d", &all)?;
                let (a, b, c) = batch_norm::backward(v[0], v[1], v[2], v[3], v[4], dims);
                (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c))
            }
        })
    }
    fn add_relu(&self, rhs: &Self) -> Result<Self> {
        Ok(map2!("add_relu", self, rhs, a, b => fused::add_relu(a, b)))
    }
    fn batch_norm2d_relu_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormReluStats<Self>)> {
        macro_rules! go {
            ($t:ty, $variant:ident) => {{
                let v = typed::<$t>("batch_norm2d_relu", &[self, gamma, beta])?;
                let (y, saved) = batch_norm::forward_train_act(v[0], v[1], v[2], dims, eps, true);
                let s = saved.stats;
                let stats = BatchNormStats {
                    mean: CpuStorage::$variant(s.mean),
                    var: CpuStorage::$variant(s.var),
                    inv_std: CpuStorage::$variant(s.inv_std),
                };
                let mask_source = CpuStorage::$variant(saved.scale);
                (
                    CpuStorage::$variant(y),
                    BatchNormReluStats { stats, mask_source },
                )
            }};
        }
        Ok(match self.dtype() {
            DType::F32 => go!(f32, F32),
            DType::F64 => go!(f64, F64),
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
        let all = [self, x, gamma, beta, mean, inv_std, mask_source];
        macro_rules! go {
            ($t:ty, $variant:ident) => {{
                let v = typed::<$t>("batch_norm2d_relu", &all)?;
                // The mask is recomputed as `scale (x - mean) + beta > 0`, `scale` the
                // forward's exact `gamma inv_std` (the `mask_source`).
                let relu = Some((v[6], v[3]));
                let (dx, dgamma, dbeta) =
                    batch_norm::backward_act(v[0], v[1], v[2], v[4], v[5], relu, dims);
                let wrap = CpuStorage::$variant;
                (wrap(dx), wrap(dgamma), wrap(dbeta))
            }};
        }
        Ok(match self.dtype() {
            DType::F32 => go!(f32, F32),
            DType::F64 => go!(f64, F64),
        })
    }
    fn max_pool2d(&self, p: &Pool2dParams) -> Result<Self> {
        Ok(map1!(self, v => pool::max_pool2d(v, p)))
    }
    fn max_pool2d_backward(&self, grad: &Self, p: &Pool2dParams) -> Result<Self> {
        Ok(map2!("max_pool2d", self, grad, x, g => pool::max_pool2d_backward(x, g, p)))
    }
    fn avg_pool2d(&self, p: &Pool2dParams) -> Result<Self> {
        Ok(map1!(self, v => pool::avg_pool2d(v, p)))
    }
    fn avg_pool2d_backward(&self, p: &Pool2dParams) -> Result<Self> {
        Ok(map1!(self, v => pool::avg_pool2d_backward(v, p)))
    }
    fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        Ok(map1!(self, v => softmax::softmax_rows(v, rows, cols, log)))
    }
    fn softmax_rows_backward(&self, g: &Self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        Ok(map2!("softmax", self, g, y, g => softmax::softmax_rows_backward(y, g, rows, cols, log)))
    }
    fn fused_loss(
        &self,
        dense_target: Option<&Self>,
        p: &FusedLossParams,
    ) -> Result<FusedLossOut<Self>> {
        macro_rules! go {
            ($t:ty, $variant:ident) => {{
                let z = typed::<$t>("fused_loss", &[self])?[0];
                let dense = match dense_target {
                    Some(t) => Some(typed::<$t>("fused_loss", &[t])?[0]),
                    None => None,
                };
                let (row_loss, grad) = loss::fused_loss(z, dense, p)?;
                FusedLossOut {
                    row_loss: CpuStorage::$variant(row_loss),
                    grad: CpuStorage::$variant(grad),
                }
            }};
        }
        Ok(match self.dtype() {
            DType::F32 => go!(f32, F32),
            DType::F64 => go!(f64, F64),
        })
    }
    fn sgd_update(
        &mut self,
        grad: &Self,
        velocity: &mut Self,
        lr: f64,
        momentum: f64,
        wd: f64,
    ) -> Result<()> {
        let (pd, gd, vd) = (self.dtype(), grad.dtype(), velocity.dtype());
        match (self, grad, velocity) {
            (CpuStorage::F32(p), CpuStorage::F32(g), CpuStorage::F32(v)) => {
                sgd::sgd_update(p, g, v, lr, momentum, wd)
            }
            (CpuStorage::F64(p), CpuStorage::F64(g), CpuStorage::F64(v)) => {
                sgd::sgd_update(p, g, v, lr, momentum, wd)
            }
            _ => {
                return Err(Error::DType {
                    op: "sgd",
                    msg: format!("parameter {pd}, gradient {gd}, velocity {vd}"),
                })
            }
        }
        Ok(())
    }
}
