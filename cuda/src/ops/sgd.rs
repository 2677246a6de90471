//! The SGD-with-momentum update as one fused kernel (`kernels/sgd.cu`).

use super::{check_len, grid_for, kernel_count};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::Result;
use crate::kernels::SGD;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Hyper-parameters of one SGD step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep<T> {
    /// Learning rate.
    pub lr: T,
    /// Momentum coefficient mu.
    pub momentum: T,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: T,
}

/// In place: v = momentum * v + (g + weight_decay * p); p -= lr * v
/// (PyTorch's SGD without dampening or Nesterov).
pub fn sgd_momentum<T: Real>(
    dev: &GpuDevice,
    params: &mut CudaSlice<T>,
    grad: &CudaSlice<T>,
    velocity: &mut CudaSlice<T>,
    step: SgdStep<T>,
) -> Result<()> {
    check_len("grad", grad.len(), params.len())?;
    check_len("velocity", velocity.len(), params.len())?;
    let n = kernel_count("params", params.len())?;
    if n == 0 {
        return Ok(());
    }
    let function = dev.function(&SGD, "sgd_momentum", "", T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(params)
        .arg(grad)
        .arg(velocity)
        .arg(&n)
        .arg(&step.lr)
        .arg(&step.momentum)
        .arg(&step.weight_decay);
    // SAFETY: arguments match `sgd_momentum`; all buffers hold n elements.
    unsafe { launch.launch(grid_for(n)) }?;
    Ok(())
}
