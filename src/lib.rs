//! arbor: a reverse-mode autodiff tensor engine that reproduces the ARB-Loss experiments.
pub use arbor_cuda as cuda;
pub use arbor_engine as engine;
pub use arbor_models as models;

/// Allocator settings for training, for binaries that use mimalloc as their global allocator.
pub mod alloc {
    /// mimalloc's `mi_option_purge_delay` (its position in mimalloc 2's option enum, which
    /// `libmimalloc-sys` does not name).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

    /// Never hand freed memory back to the OS. A training step frees and reallocates the same
    /// activation buffers every step; returning them costs a page fault and a page clear per
    /// 4 KiB on the next step (10% of a ResNet-32 step, measured with perf). The process
    /// keeps its peak working set instead, which is what it needs anyway.
    pub fn keep_freed_memory() {
        // SAFETY: setting an option is allowed at any time; 15 is purge_delay in mimalloc 2.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}
