//! Fused ops of a ResNet block (`kernels/fused.cu`): `add_relu`, the residual join. (The
//! engine's batch norm + ReLU is composed of [`super::batch_norm`] and
//! [`super::elementwise`] kernels.)

use super::{check_len, grid_for, kernel_count};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::Result;
use crate::kernels::FUSED;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// `y = max(a + b, 0)` elementwise, for `a`, `b` and `y` of one length (no broadcasting:
/// the engine takes the composed ops for shapes that broadcast).
pub fn add_relu_fwd<T: Real>(
    dev: &GpuDevice,
    a: &CudaSlice<T>,
    b: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("b", b.len(), a.len())?;
    check_len("y", y.len(), a.len())?;
    let n = kernel_count("a", a.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&FUSED, "add_relu_fwd", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(a).arg(b).arg(y).arg(&n);
    // SAFETY: the arguments match `add_relu_fwd`; all three buffers hold n elements.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
