//! CUDA kernels for arbor, compiled at run time with NVRTC, and plain host-callable
//! wrappers around them built on `cudarc`.
//!
//! - [`kernels`]: the `.cu` sources (one file per op family, in `cuda/kernels/`), embedded.
//! - [`compile`]: NVRTC compilation with a memory and disk cache; [`compile_all_to_ptx`]
//!   checks every kernel without a GPU.
//! - [`device`]: [`gpu_available`] (never panics) and [`GpuDevice`] (context, stream,
//!   modules, cuBLAS, host <-> device copies).
//! - [`ops`]: one wrapper per kernel, taking device buffers, shapes and scalars; the
//!   engine's CUDA backend calls these.
//!
//! The crate builds without any CUDA installed (cudarc's `dynamic-loading`); every
//! missing piece at run time is an [`Error`], not a panic.

pub mod compile;
pub mod device;
pub mod dtype;
pub mod error;
pub mod kernels;
pub mod ops;

pub use compile::compile_all_to_ptx;
// Device buffers and the views a wrapper accepts (`gemm` takes either), so callers need
// no direct cudarc dependency.
pub use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DevicePtr, DevicePtrMut};
pub use device::{gpu_available, GpuDevice};
pub use dtype::{DType, Real};
pub use error::{Error, Result};
