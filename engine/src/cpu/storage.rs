//! What a CPU storage is: a host vector of one dtype, with typed views. What it does, the
//! [`BackendStorage`](crate::backend::BackendStorage) ops, is in `mod.rs`.
use crate::{DType, Float};

/// Host memory, one variant per dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl CpuStorage {
    pub fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; len]),
            DType::F64 => CpuStorage::F64(vec![0.0; len]),
        }
    }
    /// Typed view of the values, or `None` if `T` is not this storage's dtype.
    pub fn as_slice<T: Float>(&self) -> Option<&[T]> {
        let any: &dyn std::any::Any = match self {
            CpuStorage::F32(v) => v,
            CpuStorage::F64(v) => v,
        };
        any.downcast_ref::<Vec<T>>().map(|v| v.as_slice())
    }
    pub fn as_mut_slice<T: Float>(&mut self) -> Option<&mut [T]> {
        let any: &mut dyn std::any::Any = match self {
            CpuStorage::F32(v) => v,
            CpuStorage::F64(v) => v,
        };
        any.downcast_mut::<Vec<T>>().map(|v| v.as_mut_slice())
    }
    /// Wraps a typed vector.
    pub fn from_vec<T: Float>(v: Vec<T>) -> Self {
        let mut boxed: Box<dyn std::any::Any> = Box::new(v);
        if let Some(v) = boxed.downcast_mut::<Vec<f32>>() {
            return CpuStorage::F32(std::mem::take(v));
        }
        match boxed.downcast::<Vec<f64>>() {
            Ok(v) => CpuStorage::F64(*v),
            Err(_) => unreachable!("Float is implemented for f32 and f64 only"),
        }
    }
}
