//! Row-major (batched) matrix multiply through cuBLAS.
//!
//! cuBLAS is column-major. A row-major matrix X [r, c] has the same bytes as the
//! column-major X^T [c, r], so the row-major product C = op(A) op(B) is computed as the
//! column-major product C^T = op(B)^T op(A)^T: swap the operands, swap m and n, and keep
//! each operand's transpose flag.

use super::check_len;
use crate::device::GpuDevice;
use crate::dtype::Real;
use crate::error::{shape_error, Result};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// Shape of C = op(A) op(B) over `batch` matrices, all row-major: op(A) is [m, k],
/// op(B) is [k, n], C is [m, n] and the C matrices are packed (stride m*n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Number of independent products.
    pub batch: usize,
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Columns of op(A), rows of op(B).
    pub k: usize,
    /// A is stored [k, m] and used transposed.
    pub trans_a: bool,
    /// B is stored [n, k] and used transposed.
    pub trans_b: bool,
    /// Elements between consecutive A matrices; 0 shares one A (e.g. conv weights).
    pub stride_a: usize,
    /// Elements between consecutive B matrices; 0 shares one B.
    pub stride_b: usize,
}

/// C = alpha op(A) op(B) + beta C for each matrix of the batch (beta = 0 ignores C's
/// old contents). f32 runs in full f32 precision (cuBLAS's default math mode, no TF32).
/// The operands may be whole buffers or views into them (`CudaSlice::slice`), which is
/// how a caller works on a chunk of a batch.
pub fn gemm<T, A, B, C>(
    dev: &GpuDevice,
    shape: &GemmShape,
    a: &A,
    b: &B,
    c: &mut C,
    alpha: T,
    beta: T,
) -> Result<()>
where
    T: Real,
    A: DevicePtr<T>,
    B: DevicePtr<T>,
    C: DevicePtrMut<T>,
    CudaBlas: Gemm<T>,
{
    let GemmShape {
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
        stride_a,
        stride_b,
    } = *shape;
    let needed = |stride: usize, size: usize| {
        if batch == 0 {
            0
        } else {
            (batch - 1) * stride + size
        }
    };
    if a.len() < needed(stride_a, m * k) || b.len() < needed(stride_b, k * n) {
        return Err(shape_error(format!(
            "gemm {shape:?}: A has {} elements, B has {}",
            a.len(),
            b.len()
        )));
    }
    check_len("C", c.len(), batch * m * n)?;
    if batch == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    let int = |v: usize| {
        i32::try_from(v).map_err(|_| shape_error(format!("gemm dimension {v} exceeds i32")))
    };
    let long = |v: usize| {
        i64::try_from(v).map_err(|_| shape_error(format!("gemm stride {v} exceeds i64")))
    };
    let op = |transposed: bool| {
        if transposed {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    // Leading dimensions are the row lengths of the stored row-major matrices.
    let ld_a = if trans_a { m } else { k };
    let ld_b = if trans_b { k } else { n };
    let config = StridedBatchedConfig {
        gemm: GemmConfig {
            transa: op(trans_b),
            transb: op(trans_a),
            m: int(n)?,
            n: int(m)?,
            k: int(k)?,
            alpha,
            lda: int(ld_b.max(1))?,
            ldb: int(ld_a.max(1))?,
            beta,
            ldc: int(n)?,
        },
        batch_size: int(batch)?,
        stride_a: long(stride_b)?,
        stride_b: long(stride_a)?,
        stride_c: long(m * n)?,
    };
    let blas = dev.blas()?;
    // SAFETY: the lengths checked above cover every matrix the strides address, and the
    // handle runs on the same stream as the buffers' other work.
    unsafe { blas.gemm_strided_batched(config, b, a, c) }?;
    Ok(())
}
