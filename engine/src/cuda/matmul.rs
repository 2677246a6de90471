//! Matrix products through cuBLAS (`arbor_cuda::ops::matmul`): the engine's row-major
//! `MatmulDims` map one to one onto a strided-batched GEMM.
use super::{GpuFloat, GpuResult};
use crate::backend::MatmulDims;
use arbor_cuda::ops::matmul::GemmShape;
use arbor_cuda::{CudaSlice, GpuDevice};

/// `C[b] = op(A[b]) op(B[b])` through cuBLAS.
pub(super) fn matmul<T: GpuFloat>(
    dev: &GpuDevice,
    a: &CudaSlice<T>,
    b: &CudaSlice<T>,
    d: &MatmulDims,
) -> GpuResult<CudaSlice<T>> {
    let mut c = dev.alloc_zeros::<T>(d.batch * d.m * d.n)?;
    let shape = GemmShape {
        batch: d.batch,
        m: d.m,
        n: d.n,
        k: d.k,
        trans_a: d.lhs_transposed,
        trans_b: d.rhs_transposed,
        stride_a: d.lhs_batch_stride,
        stride_b: d.rhs_batch_stride,
    };
    T::blas_gemm(dev, &shape, a, b, &mut c, T::ONE, T::ZERO)?;
    Ok(c)
}
