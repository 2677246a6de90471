//! arbor-engine: a reverse-mode autodiff tensor engine.
//!
//! A reader's path through one op: `ops/<family>.rs` (the `Tensor` method, its validation
//! and its backward rule) -> `backend.rs` (the primitive it calls) -> `cpu/<family>.rs`
//! (the loop). The tape is in `tape.rs`; it is one reverse loop.
pub mod backend;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
mod cuda_stub;
pub mod device;
pub mod dtype;
pub mod error;
pub mod ops;
pub mod shape;
pub mod storage;
pub mod tape;
pub mod tensor;

pub use backend::BackendStorage;
pub use device::Device;
pub use dtype::{DType, Float};
pub use error::{Error, Result};
pub use shape::Shape;
pub use storage::{CpuStorage, Storage};
pub use tape::{no_grad, Backward};
pub use tensor::{Tensor, TensorId};
pub mod gradcheck;
pub mod optim;
