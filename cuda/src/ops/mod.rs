//! Host-callable wrappers, one module per kernel file (and [`matmul`], which calls
//! cuBLAS). Each wrapper checks buffer lengths against the shapes it is given, then queues
//! the kernel on the device's stream; it does not wait for the kernel to finish.
//!
//! Conventions: buffers are contiguous row-major `CudaSlice`s; outputs are overwritten
//! (except the scatter-add backwards in [`index`], which accumulate); a zero-sized
//! tensor launches nothing.

pub mod batch_norm;
pub mod conv;
pub mod elementwise;
pub mod fused;
pub mod index;
pub mod loss;
pub mod matmul;
pub mod memory;
pub mod pool;
pub mod reduce;
pub mod sgd;
pub mod softmax;
mod strides;
pub mod window;

use crate::error::{shape_error, Error, Result};
use cudarc::driver::LaunchConfig;

/// Threads per block for elementwise kernels and row kernels.
pub(crate) const BLOCK_THREADS: u32 = 256;

/// Grid-size cap for grid-stride kernels: enough blocks to fill any current GPU; the
/// kernels' loops cover the rest.
const MAX_BLOCKS: u32 = 1 << 16;

/// Rows up to this length get a warp each; longer rows a block each.
pub(crate) const WARP_ROW_LIMIT: usize = 1024;

/// `n` as the kernels' 32-bit count. The kernels index with `unsigned int` and step by the
/// grid size, so counts are kept below 2^31 to leave that step room.
pub(crate) fn kernel_count(what: &str, n: usize) -> Result<u32> {
    if n > i32::MAX as usize {
        return Err(Error::TooLarge(format!(
            "{what} has {n} elements; the limit is 2^31 - 1"
        )));
    }
    Ok(n as u32)
}

/// Errors unless `buffer` holds exactly `expected` elements.
pub(crate) fn check_len(what: &str, actual: usize, expected: usize) -> Result<()> {
    if actual != expected {
        return Err(shape_error(format!(
            "{what} has {actual} elements, expected {expected}"
        )));
    }
    Ok(())
}

/// Product of `dims`, as the kernels' count type.
pub(crate) fn product(what: &str, dims: &[usize]) -> Result<u32> {
    let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    kernel_count(what, n.unwrap_or(usize::MAX))
}

/// Launch configuration for a grid-stride loop over `n` elements.
pub(crate) fn grid_for(n: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(BLOCK_THREADS).clamp(1, MAX_BLOCKS), 1, 1),
        block_dim: (BLOCK_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch configuration and kernel variant (`"warp"` or `"block"`) for a kernel that gives
/// each of `rows` rows of length `cols` one warp (short rows) or one block (long rows).
pub(crate) fn rows_launch(rows: u32, cols: usize) -> (LaunchConfig, &'static str) {
    if cols <= WARP_ROW_LIMIT {
        let rows_per_block = BLOCK_THREADS / 32;
        let grid = (rows.div_ceil(rows_per_block), 1, 1);
        (
            LaunchConfig {
                grid_dim: grid,
                block_dim: (BLOCK_THREADS, 1, 1),
                shared_mem_bytes: 0,
            },
            "warp",
        )
    } else {
        (
            LaunchConfig {
                grid_dim: (rows, 1, 1),
                block_dim: (BLOCK_THREADS, 1, 1),
                shared_mem_bytes: 0,
            },
            "block",
        )
    }
}

/// A view of a tensor as [outer, axis, inner] around one axis: the shape every reduction,
/// index and concat kernel works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisDims {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the axis.
    pub axis: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

impl AxisDims {
    /// The view of `shape` around `axis`.
    pub fn of(shape: &[usize], axis: usize) -> Result<Self> {
        if axis >= shape.len() {
            return Err(shape_error(format!(
                "axis {axis} out of range for shape {shape:?}"
            )));
        }
        Ok(Self {
            outer: shape[..axis].iter().product(),
            axis: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        })
    }

    /// Number of elements in the whole tensor.
    pub fn len(&self) -> usize {
        self.outer * self.axis * self.inner
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_above_i32_are_rejected() {
        assert!(kernel_count("x", i32::MAX as usize).is_ok());
        assert!(matches!(
            kernel_count("x", i32::MAX as usize + 1),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(
            product("x", &[1 << 40, 1 << 40]),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn rows_choose_warp_or_block() {
        let (cfg, variant) = rows_launch(20, 10);
        assert_eq!((variant, cfg.grid_dim.0), ("warp", 3));
        let (cfg, variant) = rows_launch(20, 2000);
        assert_eq!((variant, cfg.grid_dim.0), ("block", 20));
    }

    #[test]
    fn axis_dims_split_the_shape() {
        assert_eq!(
            AxisDims::of(&[2, 3, 4, 5], 1).unwrap(),
            AxisDims {
                outer: 2,
                axis: 3,
                inner: 20
            }
        );
        assert!(AxisDims::of(&[2], 1).is_err());
    }
}
