//! The public ops: each file holds an op family's API (as `Tensor` methods), its validation,
//! and its backward rule right beside it. Kernels live in `cpu/` (and `cuda/`).
pub mod batch_norm;
pub mod conv;
pub mod elementwise;
pub mod fused;
pub mod index;
pub mod loss;
pub mod matmul;
pub mod nn;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;

use crate::error::{Error, Result};
use crate::Tensor;

/// Two operands must share dtype and device.
pub(crate) fn check_same(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DType {
            op,
            msg: format!("{a:?} and {b:?}"),
        });
    }
    if a.device() != b.device() {
        return Err(Error::Device {
            op,
            msg: format!("{a:?} and {b:?}"),
        });
    }
    Ok(())
}
