//! The CUDA sources, embedded in the binary so a build needs no files at run time.
//! One `.cu` file per op family; see `cuda/kernels/`.

/// A kernel source file. Each file becomes one NVRTC program and one CUDA module.
#[derive(Debug)]
pub struct KernelFile {
    /// File name under `cuda/kernels/`, e.g. `"elementwise.cu"`.
    pub name: &'static str,
    /// The file's text, before header splicing (see [`crate::compile`]).
    pub source: &'static str,
}

macro_rules! kernel_file {
    ($ident:ident, $file:literal) => {
        #[doc = concat!("`kernels/", $file, "`")]
        pub const $ident: KernelFile = KernelFile {
            name: $file,
            source: include_str!(concat!("../kernels/", $file)),
        };
    };
}

kernel_file!(ELEMENTWISE, "elementwise.cu");
kernel_file!(REDUCE, "reduce.cu");
kernel_file!(SOFTMAX, "softmax.cu");
kernel_file!(CONV, "conv.cu");
kernel_file!(BATCH_NORM, "batch_norm.cu");
kernel_file!(POOL, "pool.cu");
kernel_file!(INDEX, "index.cu");
kernel_file!(MEMORY, "memory.cu");
kernel_file!(SGD, "sgd.cu");
kernel_file!(LOSS, "loss.cu");
kernel_file!(FUSED, "fused.cu");

/// Every kernel file, in the order `compile_all_to_ptx` reports them.
pub const ALL: [&KernelFile; 11] = [
    &ELEMENTWISE,
    &REDUCE,
    &SOFTMAX,
    &CONV,
    &BATCH_NORM,
    &POOL,
    &INDEX,
    &MEMORY,
    &SGD,
    &LOSS,
    &FUSED,
];

/// Headers the `.cu` files include with `#include "name"`; spliced in textually because
/// NVRTC sees one source string per program.
pub(crate) const HEADERS: [(&str, &str); 2] = [
    ("common.cuh", include_str!("../kernels/common.cuh")),
    ("dtype.cuh", include_str!("../kernels/dtype.cuh")),
];
