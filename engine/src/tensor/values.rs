//! A tensor's values in and out: copies to another device or dtype, in-place assignment,
//! and reads back to the host. None of these is recorded on the tape.
use super::Tensor;
use crate::cpu::{elementwise, CpuStorage};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::{DType, Device, Float};
use std::sync::Arc;

/// An in-place update of a gradient by another tensor of its shape (see
/// [`Tensor::update_if_unshared`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum GradUpdate {
    /// `self += other`.
    Add,
    /// `self = self [other > 0]`: relu's backward, `other` being relu's output.
    ReluMask,
}

impl Tensor {
    /// Copies to a device: `Device::Cuda(i)` uploads (opening GPU `i` on first use),
    /// `Device::Cpu` downloads. An error, never a panic, when the device is unavailable
    /// (no GPU, or a build without the `cuda` feature); the message says why.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let storage = self.storage().to_device(device)?;
        Tensor::from_storage(storage, self.shape().clone())
    }

    /// Converts the element type (no gradient flows through a cast).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let s = self.storage().cast(dtype)?;
        Tensor::from_storage(s, self.shape().clone())
    }

    /// Replaces the values in place with those of `src` (same shape and dtype).
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() || src.dtype() != self.dtype() {
            return Err(Error::Shape {
                op: "assign",
                msg: format!(
                    "{:?} {} into {:?} {}",
                    src.shape(),
                    src.dtype(),
                    self.shape(),
                    self.dtype()
                ),
            });
        }
        // A source on another device is copied over, so the storage stays where `self` is.
        let new = src.storage().to_device(self.device())?;
        *self.storage_mut() = new;
        Ok(())
    }

    /// The values as `T` (which must be the tensor's dtype), copied to the host (a download
    /// for a GPU tensor).
    pub fn to_vec<T: Float>(&self) -> Result<Vec<T>> {
        let s = self.storage();
        let downloaded;
        let cpu = match &*s {
            Storage::Cpu(cpu) => cpu,
            Storage::Cuda(_) => {
                downloaded = s.to_device(Device::Cpu)?;
                downloaded.as_cpu("to_vec")?
            }
        };
        cpu.as_slice::<T>()
            .map(|v| v.to_vec())
            .ok_or_else(|| Error::DType {
                op: "to_vec",
                msg: format!("asked for {}, tensor is {}", T::DTYPE, self.dtype()),
            })
    }

    /// The values converted to f64, copied to the host.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.storage().to_f64_vec()
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::Shape {
                op: "item",
                msg: format!(
                    "tensor of shape {:?} has {} values",
                    self.shape(),
                    self.numel()
                ),
            });
        }
        Ok(self.to_vec_f64()?[0])
    }

    /// Applies `op` to `self` in place when nothing else can see its values (this handle
    /// and its buffer are unshared, as a gradient fresh from a backward rule is) and both
    /// are CPU tensors of one shape and dtype; returns whether it did. The tape sums a
    /// residual block's two input gradients this way, and the block's ReLU masks its
    /// gradient, without a new buffer each (a fresh write stream per op and block).
    pub(crate) fn update_if_unshared(&self, other: &Tensor, op: GradUpdate) -> bool {
        let unshared = Arc::strong_count(&self.0) == 1 && Arc::strong_count(&self.0.storage) == 1;
        if !unshared || self.shape() != other.shape() || self.dtype() != other.dtype() {
            return false;
        }
        // `self`'s buffer is unshared, so `other` cannot be behind the same lock.
        let mut dst = self.storage_mut();
        let src = other.storage();
        match (&mut *dst, &*src) {
            (Storage::Cpu(CpuStorage::F32(d)), Storage::Cpu(CpuStorage::F32(s))) => {
                update(d, s, op)
            }
            (Storage::Cpu(CpuStorage::F64(d)), Storage::Cpu(CpuStorage::F64(s))) => {
                update(d, s, op)
            }
            _ => return false,
        }
        true
    }
}

fn update<T: Float>(dst: &mut [T], src: &[T], op: GradUpdate) {
    match op {
        GradUpdate::Add => elementwise::add_assign(dst, src),
        GradUpdate::ReluMask => elementwise::relu_grad_assign(dst, src),
    }
}
