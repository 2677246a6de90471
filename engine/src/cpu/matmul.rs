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

/// The instruction set `matrixmultiply`'s GEMM runs on this CPU (`"avx512"`,
/// `"avx2+fma"`, `"avx"`, `"neon"` or `"fallback"`). `ARBOR_SIMD` does not reach it:
/// matrixmultiply picks at run time, AVX-512 wherever the CPU has it (its default
/// `avx512` feature, which nalgebra's dependency on it turns on in any case), so under
/// `ARBOR_SIMD=avx2` on an AVX-512 host the im2col convolutions and the linear layers
/// still run an AVX-512 GEMM. Its one switch is `MMTEST_FEATURE`, a testing hook read at
/// compile time (the CPU features it may use), which `scripts/simd_env.py` sets for the
/// levels below AVX-512; read here at the same compile, so that the benches can print
/// and `repro` can record what the GEMM really ran. Mirrors matrixmultiply 0.3's
/// `sgemm_kernel::detect`.
pub fn gemm_isa() -> &'static str {
    let allowed = |feature: &str| gemm_feature_allowed(option_env!("MMTEST_FEATURE"), feature);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if allowed("avx512f") && has!("avx512f") {
            return "avx512";
        }
        if allowed("fma") && has!("fma") && allowed("avx2") && has!("avx2") {
            return "avx2+fma";
        }
        if allowed("avx") && has!("avx") {
            return "avx";
        }
    }
    #[cfg(target_arch = "aarch64")]
    if allowed("neon") && std::arch::is_aarch64_feature_detected!("neon") {
        return "neon";
    }
    let _ = allowed;
    "fallback"
}

/// Whether matrixmultiply may use `feature` under `MMTEST_FEATURE = list`: any, when the
/// list is unset or empty, else only those it names (comma-separated).
fn gemm_feature_allowed(list: Option<&str>, feature: &str) -> bool {
    match list {
        None | Some("") => true,
        Some(list) => list.split(',').any(|f| f == feature),
    }
}

#[cfg(test)]
mod gemm_isa_tests {
    use super::*;

    #[test]
    fn the_gemm_hook_allows_only_the_features_it_names() {
        assert!(gemm_feature_allowed(None, "avx512f") && gemm_feature_allowed(Some(""), "avx"));
        let pinned = Some("avx,avx2,fma");
        assert!(["avx", "avx2", "fma"]
            .iter()
            .all(|f| gemm_feature_allowed(pinned, f)));
        assert!(!gemm_feature_allowed(pinned, "avx512f") && !gemm_feature_allowed(pinned, "av"));
        assert!(!gemm_feature_allowed(Some("sse2"), "avx"));
        // Under the pin the reported set is never AVX-512, whatever the CPU has.
        if option_env!("MMTEST_FEATURE").is_some_and(|l| !l.is_empty() && !l.contains("avx512f")) {
            assert_ne!(gemm_isa(), "avx512");
        }
    }
}
