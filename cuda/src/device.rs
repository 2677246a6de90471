//! A GPU and everything bound to it: the CUDA context, the one stream all work goes to,
//! the modules loaded so far, and the cuBLAS handle. Plus explicit host <-> device copies.

use crate::compile::{lock, ptx_for};
use crate::error::{shape_error, Error, Result};
use crate::kernels::KernelFile;
use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Whether a CUDA GPU can be used, and if not, why. Never panics: cudarc panics when
/// `libcuda` is absent, so the library's presence is checked before any driver call.
pub fn gpu_available() -> std::result::Result<(), String> {
    // SAFETY: only tries to dlopen libcuda by its usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("the CUDA driver library (libcuda.so) was not found; \
                    this machine has no NVIDIA driver installed"
            .into());
    }
    match CudaContext::device_count() {
        Ok(count) if count > 0 => Ok(()),
        Ok(_) => Err("the CUDA driver reports no GPU".into()),
        Err(e) => Err(format!("the CUDA driver failed to initialise: {e:?}")),
    }
}

/// Kernels are looked up by (base name, variant, dtype suffix), e.g.
/// ("softmax_fwd", "warp", "f32") for `softmax_fwd_warp_f32`; static strings make the
/// lookup allocation-free on every launch.
type FunctionKey = (&'static str, &'static str, &'static str);

/// One GPU: context, stream, kernel modules and cuBLAS handle.
///
/// All work is queued on one stream, so operations run in the order they are issued and
/// need no extra synchronisation; host copies ([`GpuDevice::download`]) wait for it.
pub struct GpuDevice {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<FunctionKey, CudaFunction>>,
    blas: Mutex<Option<Arc<CudaBlas>>>,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("ordinal", &self.context.ordinal())
            .field("arch", &self.arch)
            .finish()
    }
}

impl GpuDevice {
    /// Opens GPU `ordinal` (0 for the first). Errors, rather than panics, when there is no
    /// driver or no such device.
    pub fn new(ordinal: usize) -> Result<Self> {
        gpu_available().map_err(Error::NoGpu)?;
        let context = CudaContext::new(ordinal)?;
        let (major, minor) = context.compute_capability()?;
        // SAFETY: every buffer and kernel of this device uses `stream` only, so cudarc's
        // per-buffer events (which order work across streams) have nothing to order; turning
        // them off saves two event creations per allocation.
        unsafe { context.disable_event_tracking() };
        let stream = context.new_stream()?;
        Ok(Self {
            context,
            stream,
            arch: format!("compute_{major}{minor}"),
            modules: Mutex::default(),
            functions: Mutex::default(),
            blas: Mutex::default(),
        })
    }

    /// The stream all of this device's work is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device's virtual architecture, e.g. `compute_90`; kernels are compiled for it.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The GPU's name as the driver reports it.
    pub fn name(&self) -> Result<String> {
        Ok(self.context.name()?)
    }

    /// Waits until all queued work has finished; surfaces asynchronous kernel errors.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }

    /// Runs `work` and returns its result with the GPU time between its start and end in
    /// milliseconds, measured by two CUDA events on this device's stream: honest timing of
    /// queued kernels, which the host clock would miss. Reading the time waits for `work`.
    pub fn time_ms<R>(&self, work: impl FnOnce() -> Result<R>) -> Result<(R, f32)> {
        // The default flags keep timing on (cudarc's `None` would disable it).
        let timed = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.stream.record_event(timed)?;
        let out = work()?;
        let end = self.stream.record_event(timed)?;
        Ok((out, start.elapsed_ms(&end)?))
    }

    /// The kernel `base[_variant]_suffix` from `file`, compiling and loading the file on
    /// first use.
    pub(crate) fn function(
        &self,
        file: &'static KernelFile,
        base: &'static str,
        variant: &'static str,
        suffix: &'static str,
    ) -> Result<CudaFunction> {
        let key = (base, variant, suffix);
        if let Some(function) = lock(&self.functions).get(&key) {
            return Ok(function.clone());
        }
        let module = self.module(file)?;
        let name = if variant.is_empty() {
            format!("{base}_{suffix}")
        } else {
            format!("{base}_{variant}_{suffix}")
        };
        let function = module.load_function(&name)?;
        lock(&self.functions).insert(key, function.clone());
        Ok(function)
    }

    fn module(&self, file: &'static KernelFile) -> Result<Arc<CudaModule>> {
        if let Some(module) = lock(&self.modules).get(file.name) {
            return Ok(module.clone());
        }
        let ptx = ptx_for(file, &self.arch)?;
        let module = self.context.load_module(Ptx::from_src(ptx.to_string()))?;
        lock(&self.modules).insert(file.name, module.clone());
        Ok(module)
    }

    /// The cuBLAS handle, created on first use and bound to this device's stream.
    pub(crate) fn blas(&self) -> Result<Arc<CudaBlas>> {
        let mut slot = lock(&self.blas);
        if let Some(blas) = slot.as_ref() {
            return Ok(blas.clone());
        }
        // SAFETY: only tries to dlopen libcublas by its usual names; cudarc would panic
        // instead of erroring if it were missing.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(Error::Cublas(
                "libcublas.so.13 was not found on the library path".into(),
            ));
        }
        let blas = Arc::new(CudaBlas::new(self.stream.clone())?);
        *slot = Some(blas.clone());
        Ok(blas)
    }

    /// A new device buffer of `len` zeros. Copies below take any element type the device
    /// can hold (labels and indices are `i32`).
    pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        Ok(self.stream.alloc_zeros(len)?)
    }

    /// Copies `host` into a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        Ok(self.stream.clone_htod(host)?)
    }

    /// Copies `host` into the existing buffer `device`; the lengths must match.
    pub fn upload_into<T: DeviceRepr>(&self, host: &[T], device: &mut CudaSlice<T>) -> Result<()> {
        if host.len() != device.len() {
            return Err(shape_error(format!(
                "upload of {} elements into a buffer of {}",
                host.len(),
                device.len()
            )));
        }
        Ok(self.stream.memcpy_htod(host, device)?)
    }

    /// Copies a device buffer to a new `Vec`, waiting for the work that writes it.
    pub fn download<T: DeviceRepr>(&self, device: &CudaSlice<T>) -> Result<Vec<T>> {
        let host = self.stream.clone_dtoh(device)?;
        self.synchronize()?;
        Ok(host)
    }

    /// Copies `src` into `dst` on the device; the lengths must match.
    pub fn copy<T: DeviceRepr>(&self, src: &CudaSlice<T>, dst: &mut CudaSlice<T>) -> Result<()> {
        if src.len() != dst.len() {
            return Err(shape_error(format!(
                "copy of {} elements into a buffer of {}",
                src.len(),
                dst.len()
            )));
        }
        Ok(self.stream.memcpy_dtod(src, dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<GpuDevice>();
    }

    #[test]
    fn no_gpu_reason_is_reported_without_panicking() {
        if let Err(reason) = gpu_available() {
            assert!(!reason.is_empty());
            assert!(matches!(GpuDevice::new(0), Err(Error::NoGpu(_))));
        }
    }
}
