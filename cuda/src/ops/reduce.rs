//! Reductions over one axis (`kernels/reduce.cu`): the input is viewed as
//! [outer, axis, inner] ([`AxisDims`]) and the output is [outer, inner].
//!
//! The engine composes the backwards from other ops: `sum`'s is a broadcast (a
//! [`crate::ops::memory::copy_strided`] with stride 0 along the axis), `max`'s an `Eq`
//! mask shared among ties, `logsumexp`'s `exp(x - y)`.

use super::{check_len, grid_for, kernel_count, rows_launch, AxisDims};
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
use crate::kernels::REDUCE;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// y[o, i] = sum over the axis of x[o, :, i].
pub fn sum_axis<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    dims: AxisDims,
) -> Result<()> {
    let plan = Plan::new(dims, x.len(), y.len(), false)?;
    let Some((cfg, variant)) = plan.launch() else {
        return Ok(());
    };
    let function = dev.function(&REDUCE, "sum", variant, T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(&plan.outer).arg(&plan.axis);
    if plan.strided() {
        launch.arg(&plan.inner);
    }
    // SAFETY: arguments match the `sum_*` kernels; lengths were checked by `Plan::new`.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// y[o, i] = max over the axis of x[o, :, i], and argmax[o, i] its index along the axis
/// (the first on ties; NaN counts as the largest).
pub fn max_axis<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    argmax: &mut CudaSlice<i32>,
    dims: AxisDims,
) -> Result<()> {
    let plan = Plan::new(dims, x.len(), y.len(), true)?;
    check_len("argmax", argmax.len(), y.len())?;
    let Some((cfg, variant)) = plan.launch() else {
        return Ok(());
    };
    let function = dev.function(&REDUCE, "max", variant, T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch
        .arg(x)
        .arg(y)
        .arg(argmax)
        .arg(&plan.outer)
        .arg(&plan.axis);
    if plan.strided() {
        launch.arg(&plan.inner);
    }
    // SAFETY: arguments match the `max_*` kernels; lengths were checked above.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// y[o, i] = log(sum over the axis of exp(x[o, :, i])), computed stably; -inf when every
/// term is -inf.
pub fn logsumexp_axis<T: Real>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
    dims: AxisDims,
) -> Result<()> {
    let plan = Plan::new(dims, x.len(), y.len(), true)?;
    let Some((cfg, variant)) = plan.launch() else {
        return Ok(());
    };
    let function = dev.function(&REDUCE, "logsumexp", variant, T::SUFFIX)?;
    let mut launch = dev.stream().launch_builder(&function);
    launch.arg(x).arg(y).arg(&plan.outer).arg(&plan.axis);
    if plan.strided() {
        launch.arg(&plan.inner);
    }
    // SAFETY: arguments match the `logsumexp_*` kernels; lengths were checked.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Checked sizes of one reduction and the choice of kernel layout.
struct Plan {
    outer: u32,
    axis: u32,
    inner: u32,
}

impl Plan {
    /// Checks `input_len` / `output_len` against `dims`; `needs_axis` rejects an empty
    /// axis, which has no max or logsumexp.
    fn new(dims: AxisDims, input_len: usize, output_len: usize, needs_axis: bool) -> Result<Self> {
        check_len("input", input_len, dims.len())?;
        check_len("output", output_len, dims.outer * dims.inner)?;
        if needs_axis && dims.axis == 0 && output_len > 0 {
            return Err(shape_error("max / logsumexp over an empty axis"));
        }
        kernel_count("input", input_len)?;
        Ok(Self {
            outer: dims.outer as u32,
            axis: dims.axis as u32,
            inner: dims.inner as u32,
        })
    }

    /// `_strided` kernels when the axis is not the innermost.
    fn strided(&self) -> bool {
        self.inner > 1
    }

    /// Launch configuration and kernel variant; None when there is no output.
    fn launch(&self) -> Option<(LaunchConfig, &'static str)> {
        let outputs = self.outer * self.inner;
        if outputs == 0 {
            None
        } else if self.strided() {
            Some((grid_for(outputs), "strided"))
        } else {
            let (cfg, variant) = rows_launch(self.outer, self.axis as usize);
            Some((
                cfg,
                if variant == "warp" {
                    "contig_warp"
                } else {
                    "contig_block"
                },
            ))
        }
    }
}
