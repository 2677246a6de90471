//! What a CUDA storage is: a reference-counted device buffer of one dtype and the GPU it
//! lives on, the element types with kernels ([`GpuFloat`]), and the moves between host and
//! GPU. What it does, the [`BackendStorage`](crate::backend::BackendStorage) ops, is in
//! `mod.rs`.
use super::registry;
use crate::backend::{BackendStorage, BatchNormStats};
use crate::cpu::CpuStorage;
use crate::error::Error;
use crate::Result;
use arbor_cuda::ops::matmul::GemmShape;
use arbor_cuda::{CudaSlice, DevicePtr, DevicePtrMut, GpuDevice};
use std::sync::Arc;

/// A tensor's values in GPU memory.
#[derive(Clone)]
pub struct CudaStorage {
    pub(super) buf: CudaBuf,
    pub(super) dev: Arc<GpuDevice>,
    pub(super) ordinal: usize,
}

/// The device buffer, one variant per dtype.
#[derive(Clone)]
pub(super) enum CudaBuf {
    F32(Arc<CudaSlice<f32>>),
    F64(Arc<CudaSlice<f64>>),
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage({} x {}, cuda:{})",
            self.len(),
            self.dtype(),
            self.ordinal
        )
    }
}

/// The element types with CUDA kernels: what the generic op functions need to know.
pub(super) trait GpuFloat: arbor_cuda::Real + crate::Float + From<f32> {
    fn wrap(s: CudaSlice<Self>) -> CudaBuf;
    fn typed(b: &CudaBuf) -> Option<&Arc<CudaSlice<Self>>>;
    fn typed_mut(b: &mut CudaBuf) -> Option<&mut Arc<CudaSlice<Self>>>;
    /// cuBLAS GEMM ([`arbor_cuda::ops::matmul::gemm`]) on whole buffers or views; a trait
    /// method because cuBLAS's bound is per concrete type.
    #[allow(clippy::too_many_arguments)]
    fn blas_gemm<A: DevicePtr<Self>, B: DevicePtr<Self>, C: DevicePtrMut<Self>>(
        dev: &GpuDevice,
        shape: &GemmShape,
        a: &A,
        b: &B,
        c: &mut C,
        alpha: Self,
        beta: Self,
    ) -> arbor_cuda::Result<()>;
}

macro_rules! gpu_float {
    ($t:ty, $variant:ident) => {
        impl GpuFloat for $t {
            fn wrap(s: CudaSlice<Self>) -> CudaBuf {
                CudaBuf::$variant(Arc::new(s))
            }
            fn typed(b: &CudaBuf) -> Option<&Arc<CudaSlice<Self>>> {
                match b {
                    CudaBuf::$variant(s) => Some(s),
                    _ => None,
                }
            }
            fn typed_mut(b: &mut CudaBuf) -> Option<&mut Arc<CudaSlice<Self>>> {
                match b {
                    CudaBuf::$variant(s) => Some(s),
                    _ => None,
                }
            }
            fn blas_gemm<A: DevicePtr<Self>, B: DevicePtr<Self>, C: DevicePtrMut<Self>>(
                dev: &GpuDevice,
                shape: &GemmShape,
                a: &A,
                b: &B,
                c: &mut C,
                alpha: Self,
                beta: Self,
            ) -> arbor_cuda::Result<()> {
                arbor_cuda::ops::matmul::gemm(dev, shape, a, b, c, alpha, beta)
            }
        }
    };
}
gpu_float!(f32, F32);
gpu_float!(f64, F64);

/// The result type of the op functions; the `BackendStorage` methods turn its errors into
/// [`Error::Device`] naming the op.
pub(super) type GpuResult<T> = arbor_cuda::Result<T>;

/// Wraps a kernel-crate error as the engine's device error for `op`.
pub(super) fn gpu_err(op: &'static str) -> impl Fn(arbor_cuda::Error) -> Error {
    move |e| Error::Device {
        op,
        msg: e.to_string(),
    }
}

impl CudaStorage {
    /// Copies host values to GPU `ordinal` (opened on first use).
    pub fn upload(host: &CpuStorage, ordinal: usize) -> Result<Self> {
        let dev = registry::device(ordinal)?;
        let buf = match host {
            CpuStorage::F32(v) => f32::wrap(dev.upload(v).map_err(gpu_err("to_device"))?),
            CpuStorage::F64(v) => f64::wrap(dev.upload(v).map_err(gpu_err("to_device"))?),
        };
        Ok(CudaStorage { buf, dev, ordinal })
    }

    /// Copies the values to the host, waiting for the work that writes them.
    pub fn download(&self) -> Result<CpuStorage> {
        let err = gpu_err("to_device");
        Ok(match &self.buf {
            CudaBuf::F32(s) => CpuStorage::F32(self.dev.download(s).map_err(err)?),
            CudaBuf::F64(s) => CpuStorage::F64(self.dev.download(s).map_err(err)?),
        })
    }

    /// The GPU this storage lives on.
    pub fn gpu(&self) -> &Arc<GpuDevice> {
        &self.dev
    }

    /// The buffer as `T`, or a dtype error naming `op`.
    pub(super) fn typed<T: GpuFloat>(&self, op: &'static str) -> Result<&CudaSlice<T>> {
        T::typed(&self.buf)
            .map(|s| &**s)
            .ok_or_else(|| Error::DType {
                op,
                msg: format!("expected {}, the buffer holds {}", T::DTYPE, self.dtype()),
            })
    }

    /// A storage on this one's GPU holding `s`.
    pub(super) fn with<T: GpuFloat>(&self, s: CudaSlice<T>) -> Self {
        CudaStorage {
            buf: T::wrap(s),
            dev: self.dev.clone(),
            ordinal: self.ordinal,
        }
    }

    /// Batch norm's statistics as storages on this one's GPU.
    pub(super) fn with_stats<T: GpuFloat>(
        &self,
        st: BatchNormStats<CudaSlice<T>>,
    ) -> BatchNormStats<Self> {
        BatchNormStats {
            mean: self.with(st.mean),
            var: self.with(st.var),
            inv_std: self.with(st.inv_std),
        }
    }

    /// `other` must live on this storage's GPU.
    pub(super) fn same_gpu(&self, op: &'static str, other: &Self) -> Result<()> {
        if other.ordinal == self.ordinal {
            return Ok(());
        }
        Err(Error::Device {
            op,
            msg: format!(
                "operands live on cuda:{} and cuda:{}",
                self.ordinal, other.ordinal
            ),
        })
    }

    /// Typed buffers of `others` (which must share this storage's GPU and dtype).
    pub(super) fn operands<'a, T: GpuFloat>(
        &self,
        op: &'static str,
        others: &[&'a Self],
    ) -> Result<Vec<&'a CudaSlice<T>>> {
        others
            .iter()
            .map(|o| {
                self.same_gpu(op, o)?;
                o.typed::<T>(op)
            })
            .collect()
    }
}

/// Zeros on `dev`; outputs of kernels that only add into part of them (scatters).
pub(super) fn zeros<T: GpuFloat>(dev: &GpuDevice, len: usize) -> GpuResult<CudaSlice<T>> {
    dev.alloc_zeros::<T>(len)
}
