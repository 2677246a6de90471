//! Moving a storage between devices: the only place host and device memory meet, so every
//! transfer is explicit.
use super::{CpuStorage, CudaStorage, Storage};
use crate::backend::BackendStorage;
use crate::error::Error;
use crate::{Device, Result};

impl Storage {
    /// A copy on `device`: an upload, a download, or (between two GPUs) both. The only
    /// place host and device memory meet, so every transfer is explicit.
    pub fn to_device(&self, device: Device) -> Result<Self> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let downloaded;
        let host = match self {
            Storage::Cpu(s) => s,
            Storage::Cuda(s) => {
                downloaded = download(s)?;
                &downloaded
            }
        };
        match device {
            Device::Cpu => Ok(Storage::Cpu(host.clone())),
            Device::Cuda(ordinal) => Ok(Storage::Cuda(upload(host, ordinal)?)),
        }
    }

    /// Borrows the host storage, or explains that the tensor lives elsewhere.
    pub fn as_cpu(&self, op: &'static str) -> Result<&CpuStorage> {
        match self {
            Storage::Cpu(s) => Ok(s),
            Storage::Cuda(s) => Err(Error::Device {
                op,
                msg: format!("needs host memory, the tensor is on {}", s.device()),
            }),
        }
    }
}

#[cfg(feature = "cuda")]
fn upload(host: &CpuStorage, ordinal: usize) -> Result<CudaStorage> {
    CudaStorage::upload(host, ordinal)
}

#[cfg(feature = "cuda")]
fn download(s: &CudaStorage) -> Result<CpuStorage> {
    s.download()
}

#[cfg(not(feature = "cuda"))]
fn upload(_host: &CpuStorage, ordinal: usize) -> Result<CudaStorage> {
    Err(Error::Device {
        op: "to_device",
        msg: format!(
            "cuda:{ordinal} is not available: arbor was built without the `cuda` feature \
             (rebuild with `--features cuda`)"
        ),
    })
}

#[cfg(not(feature = "cuda"))]
fn download(s: &CudaStorage) -> Result<CpuStorage> {
    match *s {}
}
