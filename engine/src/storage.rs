//! A tensor's flat buffer on its device. `Storage` forwards every op of
//! [`BackendStorage`] to the device's own storage type.
use crate::backend::*;
use crate::error::Error;
use crate::{DType, Device, Result, Shape};

pub use crate::cpu::CpuStorage;

#[cfg(feature = "cuda")]
pub use crate::cuda::CudaStorage;
#[cfg(not(feature = "cuda"))]
pub use crate::cuda_stub::CudaStorage;

mod transfer;

/// A tensor's buffer: host or GPU.
#[derive(Debug, Clone)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

fn device_mismatch(op: &'static str, a: Device, b: Device) -> Error {
    Error::Device {
        op,
        msg: format!("operands live on {a} and {b}"),
    }
}

/// Forwards a method to the device storage and rewraps the result.
macro_rules! forward {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            Storage::Cpu($s) => Ok(Storage::Cpu($call?)),
            #[allow(unreachable_code)]
            Storage::Cuda($s) => Ok(Storage::Cuda($call?)),
        }
    };
}

/// Same for methods taking a second storage of the same device.
macro_rules! forward2 {
    ($op:expr, $self:expr, $other:expr, $s:ident, $o:ident => $call:expr) => {
        match ($self, $other) {
            (Storage::Cpu($s), Storage::Cpu($o)) => Ok(Storage::Cpu($call?)),
            #[allow(unreachable_code)]
            (Storage::Cuda($s), Storage::Cuda($o)) => Ok(Storage::Cuda($call?)),
            (a, b) => Err(device_mismatch($op, a.device(), b.device())),
        }
    };
}

/// Same for methods taking several storages that must all share one device and returning
/// something other than one storage (batch norm's outputs and statistics, or nothing for the
/// in-place SGD step): `$wrap` puts each storage of the result back in its `Storage` variant.
macro_rules! forward_all {
    ($mismatch:expr, ($($s:expr => $v:ident),+) => $call:expr, $wrap:expr) => {
        match ($($s,)+) {
            ($(Storage::Cpu($v),)+) => Ok($wrap($call?, Storage::Cpu)),
            #[allow(unreachable_code)]
            ($(Storage::Cuda($v),)+) => Ok($wrap($call?, Storage::Cuda)),
            _ => Err($mismatch),
        }
    };
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => s.device(),
        }
    }
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        match self {
            Storage::Cpu(s) => s.to_f64_vec(),
            Storage::Cuda(s) => s.to_f64_vec(),
        }
    }
    pub fn cast(&self, dtype: DType) -> Result<Self> {
        forward!(self, s => s.cast(dtype))
    }
    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        forward!(self, s => s.unary(op))
    }
    pub fn binary(
        &self,
        rhs: &Self,
        op: BinaryOp,
        l: &Shape,
        r: &Shape,
        o: &Shape,
    ) -> Result<Self> {
        forward2!("binary", self, rhs, a, b => a.binary(b, op, l, r, o))
    }
    pub fn reduce(&self, op: ReduceOp, shape: &Shape, axis: usize) -> Result<Self> {
        forward!(self, s => s.reduce(op, shape, axis))
    }
    pub fn matmul(&self, rhs: &Self, dims: &MatmulDims) -> Result<Self> {
        forward2!("matmul", self, rhs, a, b => a.matmul(b, dims))
    }
    pub fn permute(&self, shape: &Shape, perm: &[usize]) -> Result<Self> {
        forward!(self, s => s.permute(shape, perm))
    }
    pub fn slice(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self> {
        forward!(self, s => s.slice(shape, ranges))
    }
    pub fn slice_backward(&self, shape: &Shape, ranges: &[SliceRange]) -> Result<Self> {
        forward!(self, s => s.slice_backward(shape, ranges))
    }
    pub fn pad_channels(&self, shape: &Shape, before: usize, after: usize) -> Result<Self> {
        forward!(self, s => s.pad_channels(shape, before, after))
    }
    pub fn index_select(&self, shape: &Shape, axis: usize, idx: &[usize]) -> Result<Self> {
        forward!(self, s => s.index_select(shape, axis, idx))
    }
    pub fn index_add(&self, shape: &Shape, axis: usize, idx: &[usize]) -> Result<Self> {
        forward!(self, s => s.index_add(shape, axis, idx))
    }
    pub fn gather(
        &self,
        shape: &Shape,
        axis: usize,
        idx: &[usize],
        ishape: &Shape,
    ) -> Result<Self> {
        forward!(self, s => s.gather(shape, axis, idx, ishape))
    }
    pub fn scatter_add(
        &self,
        shape: &Shape,
        axis: usize,
        idx: &[usize],
        ishape: &Shape,
    ) -> Result<Self> {
        forward!(self, s => s.scatter_add(shape, axis, idx, ishape))
    }
    pub fn concat(parts: &[&Self], shapes: &[Shape], axis: usize) -> Result<Self> {
        let device = parts.first().map(|p| p.device()).unwrap_or(Device::Cpu);
        if let Some(p) = parts.iter().find(|p| p.device() != device) {
            return Err(device_mismatch("concat", device, p.device()));
        }
        match device {
            Device::Cpu => {
                let cpu: Vec<&CpuStorage> = parts
                    .iter()
                    .map(|p| match p {
                        Storage::Cpu(s) => s,
                        Storage::Cuda(_) => unreachable!("devices checked above"),
                    })
                    .collect();
                Ok(Storage::Cpu(CpuStorage::concat(&cpu, shapes, axis)?))
            }
            #[allow(unreachable_code)]
            Device::Cuda(_) => {
                let gpu: Vec<&CudaStorage> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Storage::Cuda(s) => Some(s),
                        Storage::Cpu(_) => None,
                    })
                    .collect();
                Ok(Storage::Cuda(CudaStorage::concat(&gpu, shapes, axis)?))
            }
        }
    }
    pub fn conv2d(&self, w: &Self, p: &Conv2dParams) -> Result<Self> {
        forward2!("conv2d", self, w, x, w => x.conv2d(w, p))
    }
    pub fn conv2d_input_grad(&self, w: &Self, p: &Conv2dParams) -> Result<Self> {
        forward2!("conv2d", self, w, g, w => g.conv2d_input_grad(w, p))
    }
    pub fn conv2d_weight_grad(&self, x: &Self, p: &Conv2dParams) -> Result<Self> {
        forward2!("conv2d", self, x, g, x => g.conv2d_weight_grad(x, p))
    }
    pub fn max_pool2d(&self, p: &Pool2dParams) -> Result<Self> {
        forward!(self, s => s.max_pool2d(p))
    }
    pub fn max_pool2d_backward(&self, grad: &Self, p: &Pool2dParams) -> Result<Self> {
        forward2!("max_pool2d", self, grad, x, g => x.max_pool2d_backward(g, p))
    }
    pub fn avg_pool2d(&self, p: &Pool2dParams) -> Result<Self> {
        forward!(self, s => s.avg_pool2d(p))
    }
    pub fn avg_pool2d_backward(&self, p: &Pool2dParams) -> Result<Self> {
        forward!(self, s => s.avg_pool2d_backward(p))
    }
    pub fn softmax_rows(&self, rows: usize, cols: usize, log: bool) -> Result<Self> {
        forward!(self, s => s.softmax_rows(rows, cols, log))
    }
    pub fn softmax_rows_backward(
        &self,
        g: &Self,
        rows: usize,
        cols: usize,
        log: bool,
    ) -> Result<Self> {
        forward2!("softmax", self, g, y, g => y.softmax_rows_backward(g, rows, cols, log))
    }

    /// The fused loss; `dense_target` must live on the logits' device.
    pub fn fused_loss(
        &self,
        dense_target: Option<&Self>,
        p: &FusedLossParams,
    ) -> Result<FusedLossOut<Self>> {
        match (self, dense_target) {
            (Storage::Cpu(z), None) => Ok(wrap_loss(z.fused_loss(None, p)?, Storage::Cpu)),
            (Storage::Cpu(z), Some(Storage::Cpu(t))) => {
                Ok(wrap_loss(z.fused_loss(Some(t), p)?, Storage::Cpu))
            }
            #[allow(unreachable_code)]
            (Storage::Cuda(z), None) => Ok(wrap_loss(z.fused_loss(None, p)?, Storage::Cuda)),
            #[allow(unreachable_code)]
            (Storage::Cuda(z), Some(Storage::Cuda(t))) => {
                Ok(wrap_loss(z.fused_loss(Some(t), p)?, Storage::Cuda))
            }
            (z, Some(t)) => Err(device_mismatch("fused_loss", z.device(), t.device())),
        }
    }
}

fn wrap_loss<S>(out: FusedLossOut<S>, wrap: fn(S) -> Storage) -> FusedLossOut<Storage> {
    FusedLossOut {
        row_loss: wrap(out.row_loss),
        grad: wrap(out.grad),
    }
}

impl Storage {
    pub fn batch_norm2d_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormStats<Self>)> {
        forward_all!(
            device_mismatch("batch_norm2d", self.device(), gamma.device()),
            (self => x, gamma => g, beta => b) => x.batch_norm2d_train(g, b, dims, eps),
            wrap_train
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm2d_eval(
        &self,
        gamma: &Self,
        beta: &Self,
        running_mean: &Self,
        running_var: &Self,
        dims: &BatchNormDims,
        eps: f64,
        relu: bool,
    ) -> Result<Self> {
        forward_all!(
            device_mismatch("batch_norm2d", self.device(), gamma.device()),
            (self => x, gamma => g, beta => b, running_mean => m, running_var => v)
                => x.batch_norm2d_eval(g, b, m, v, dims, eps, relu),
            wrap_one
        )
    }

    pub fn batch_norm2d_backward(
        &self,
        x: &Self,
        gamma: &Self,
        mean: &Self,
        inv_std: &Self,
        dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)> {
        forward_all!(
            device_mismatch("batch_norm2d", self.device(), x.device()),
            (self => g, x => x, gamma => ga, mean => m, inv_std => s)
                => g.batch_norm2d_backward(x, ga, m, s, dims),
            wrap_three
        )
    }

    pub fn add_relu(&self, rhs: &Self) -> Result<Self> {
        forward2!("add_relu", self, rhs, a, b => a.add_relu(b))
    }

    pub fn batch_norm2d_relu_train(
        &self,
        gamma: &Self,
        beta: &Self,
        dims: &BatchNormDims,
        eps: f64,
    ) -> Result<(Self, BatchNormReluStats<Self>)> {
        forward_all!(
            device_mismatch("batch_norm2d_relu", self.device(), gamma.device()),
            (self => x, gamma => g, beta => b) => x.batch_norm2d_relu_train(g, b, dims, eps),
            wrap_relu_train
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm2d_relu_backward(
        &self,
        x: &Self,
        gamma: &Self,
        beta: &Self,
        mean: &Self,
        inv_std: &Self,
        mask_source: &Self,
        dims: &BatchNormDims,
    ) -> Result<(Self, Self, Self)> {
        forward_all!(
            device_mismatch("batch_norm2d_relu", self.device(), x.device()),
            (self => g, x => x, gamma => ga, beta => b, mean => m, inv_std => s,
                mask_source => k) => g.batch_norm2d_relu_backward(x, ga, b, m, s, k, dims),
            wrap_three
        )
    }

    pub fn sgd_update(
        &mut self,
        grad: &Self,
        velocity: &mut Self,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> Result<()> {
        // The devices are read first: the match below holds `self` and `velocity` mutably.
        let (pd, gd, vd) = (self.device(), grad.device(), velocity.device());
        forward_all!(
            Error::Device {
                op: "sgd",
                msg: format!("parameter on {pd}, gradient on {gd}, velocity on {vd}"),
            },
            (self => p, grad => g, velocity => v) => p.sgd_update(g, v, lr, momentum, weight_decay),
            wrap_none
        )
    }
}

fn wrap_one<S>(out: S, wrap: fn(S) -> Storage) -> Storage {
    wrap(out)
}

fn wrap_three<S>((a, b, c): (S, S, S), wrap: fn(S) -> Storage) -> (Storage, Storage, Storage) {
    (wrap(a), wrap(b), wrap(c))
}

fn wrap_train<S>(
    (y, st): (S, BatchNormStats<S>),
    wrap: fn(S) -> Storage,
) -> (Storage, BatchNormStats<Storage>) {
    let stats = BatchNormStats {
        mean: wrap(st.mean),
        var: wrap(st.var),
        inv_std: wrap(st.inv_std),
    };
    (wrap(y), stats)
}

fn wrap_relu_train<S>(
    (y, saved): (S, BatchNormReluStats<S>),
    wrap: fn(S) -> Storage,
) -> (Storage, BatchNormReluStats<Storage>) {
    let (y, stats) = wrap_train((y, saved.stats), wrap);
    let mask_source = wrap(saved.mask_source);
    (y, BatchNormReluStats { stats, mask_source })
}

/// For the in-place SGD step, which returns no storage.
fn wrap_none<S>(_: (), _: fn(S) -> Storage) {}
