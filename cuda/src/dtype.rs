//! Element types that have kernels, and the suffix each kernel name carries for them
//! (`relu_fwd_f32`, `cast_f32_bf16`).

use cudarc::driver::{DeviceRepr, ValidAsZeroBits};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type the kernels are instantiated for. Sealed: a kernel name is only valid
/// for the types the `.cu` files instantiate.
pub trait DType: sealed::Sealed + DeviceRepr + ValidAsZeroBits + Copy + Default + 'static {
    /// Suffix of this type's kernel names: `f32`, `f64`, `f16` or `bf16`.
    const SUFFIX: &'static str;
}

/// f32 and f64: the types of the general-purpose kernels (elementwise, reductions,
/// convolution, normalisation, optimiser).
pub trait Real: DType {}

impl DType for f32 {
    const SUFFIX: &'static str = "f32";
}
impl DType for f64 {
    const SUFFIX: &'static str = "f64";
}
impl DType for half::f16 {
    const SUFFIX: &'static str = "f16";
}
impl DType for half::bf16 {
    const SUFFIX: &'static str = "bf16";
}

impl Real for f32 {}
impl Real for f64 {}
