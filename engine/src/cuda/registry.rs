//! One [`GpuDevice`] per ordinal, opened on first use and shared by every tensor on it
//! (so all of a GPU's work goes to one stream, in issue order).
use crate::error::{Error, Result};
use arbor_cuda::GpuDevice;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The GPU `ordinal`, opened on first use. On a machine without a usable GPU this is an
/// [`Error::Device`] carrying [`arbor_cuda::gpu_available`]'s reason; it never panics,
/// and a failure is not remembered (a later call checks again).
pub fn device(ordinal: usize) -> Result<Arc<GpuDevice>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<GpuDevice>>>> = OnceLock::new();
    let mut devices = DEVICES
        .get_or_init(Mutex::default)
        .lock()
        // A panic while the map was held cannot have left it half-updated.
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(dev) = devices.get(&ordinal) {
        return Ok(dev.clone());
    }
    let unavailable = |why: String| Error::Device {
        op: "to_device",
        msg: format!("cuda:{ordinal} is not available: {why}"),
    };
    // Checked before any driver call: cudarc panics when libcuda is missing.
    arbor_cuda::gpu_available().map_err(unavailable)?;
    let dev = Arc::new(GpuDevice::new(ordinal).map_err(|e| unavailable(e.to_string()))?);
    devices.insert(ordinal, dev.clone());
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gpu_is_an_error_with_the_reason() {
        if let Err(why) = arbor_cuda::gpu_available() {
            let err = device(0).unwrap_err().to_string();
            assert!(
                err.contains("cuda:0 is not available") && err.contains(&why),
                "{err}"
            );
        }
    }
}
