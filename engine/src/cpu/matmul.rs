//! Matrix products through `matrixmultiply`'s sgemm/dgemm. Transposes are free: they are
//! just swapped strides. Large single products are split into row blocks across rayon
//! threads; batched products run one batch item per task.
use super::elementwise::PAR_MIN;
use crate::backend::MatmulDims;
use crate::Float;
use rayon::prelude::*;

/// Rows per rayon task when one product is split: one block per thread (each task packs
/// all of B, so fewer, larger blocks repack less), rounded to sgemm's 8-row micro-tile.
fn row_block(m: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    (m.div_ceil(threads).div_ceil(8) * 8).max(8)
}

pub fn matmul<T: Float>(a: &[T], b: &[T], d: &MatmulDims) -> Vec<T> {
    let (m, k, n) = (d.m, d.k, d.n);
    let mut out = vec![T::ZERO; d.batch * m * n];
    if out.is_empty() {
        return out;
    }
    // Row and column strides of each operand as stored.
    let (rsa, csa) = if d.lhs_transposed {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (rsb, csb) = if d.rhs_transposed {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let gemm_rows = |bi: usize, r0: usize, rows: usize, c: &mut [T]| {
        let a_ptr = a[bi * d.lhs_batch_stride..].as_ptr();
        let b_ptr = b[bi * d.rhs_batch_stride..].as_ptr();
        // SAFETY: row r0's first element is at r0*rsa; every index stays inside the operand
        // slices, whose lengths the tensor layer checked against `d`.
        unsafe {
            T::gemm(
                rows,
                k,
                n,
                T::ONE,
                a_ptr.offset(r0 as isize * rsa),
                rsa,
                csa,
                b_ptr,
                rsb,
                csb,
                T::ZERO,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    };
    let work = d.batch * m * n * k;
    if d.batch > 1 && work >= PAR_MIN {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(bi, c)| gemm_rows(bi, 0, m, c));
    } else if d.batch == 1 && work >= PAR_MIN * 8 && m >= 16 {
        let block = row_block(m);
        out.par_chunks_mut(block * n)
            .enumerate()
            .for_each(|(blk, c)| gemm_rows(0, blk * block, c.len() / n, c));
    } else {
        for (bi, c) in out.chunks_mut(m * n).enumerate() {
            gemm_rows(bi, 0, m, c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_operands() {
        // A = [[1,2],[3,4]] stored transposed as [[1,3],[2,4]]; B = I.
        let at = [1.0f64, 3.0, 2.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let d = MatmulDims {
            batch: 1,
            m: 2,
            k: 2,
            n: 2,
            lhs_transposed: true,
            rhs_transposed: false,
            lhs_batch_stride: 0,
            rhs_batch_stride: 0,
        };
        assert_eq!(matmul(&at, &b, &d), vec![19.0, 22.0, 43.0, 50.0]);
    }
}
