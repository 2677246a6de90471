//! The SGD update: one fused kernel per parameter (`cuda/kernels/sgd.cu`), in place.
use super::{GpuFloat, GpuResult};
use arbor_cuda::ops::sgd::{sgd_momentum, SgdStep};
use arbor_cuda::{CudaSlice, GpuDevice};
use std::sync::Arc;

/// The in-place SGD update, after making the parameter and velocity buffers unshared.
pub(super) fn sgd_step<T: GpuFloat>(
    dev: &GpuDevice,
    p: &mut Arc<CudaSlice<T>>,
    g: &CudaSlice<T>,
    v: &mut Arc<CudaSlice<T>>,
    step: SgdStep<T>,
) -> GpuResult<()> {
    let (p, v) = (unique(dev, p)?, unique(dev, v)?);
    sgd_momentum(dev, p, g, v, step)
}

/// `arc`'s buffer for writing: shared buffers are copied first (copy-on-write).
fn unique<'a, T: GpuFloat>(
    dev: &GpuDevice,
    arc: &'a mut Arc<CudaSlice<T>>,
) -> GpuResult<&'a mut CudaSlice<T>> {
    if Arc::get_mut(arc).is_none() {
        let mut copy = dev.alloc_zeros::<T>(arc.len())?;
        dev.copy(arc, &mut copy)?;
        *arc = Arc::new(copy);
    }
    Ok(Arc::get_mut(arc).expect("the buffer was just made unique"))
}
