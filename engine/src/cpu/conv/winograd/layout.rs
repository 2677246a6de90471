//! Between NCHW and the channels-last copies the transforms read and write: `N x N` blocks
//! transposed in registers, masked at the edges.
use super::super::direct::Lanes;
use std::mem::MaybeUninit;

/// Where a transpose stores: the f32 copies, or the op's not yet initialised output.
pub trait Dst: Sized {
    fn store_first<L: Lanes>(d: &mut [Self], at: usize, count: usize, v: L::V);
}

impl Dst for f32 {
    #[inline(always)]
    fn store_first<L: Lanes>(d: &mut [f32], at: usize, count: usize, v: L::V) {
        L::store_first(d, at, count, v)
    }
}

impl Dst for MaybeUninit<f32> {
    #[inline(always)]
    fn store_first<L: Lanes>(d: &mut [Self], at: usize, count: usize, v: L::V) {
        L::store_first(d, at, count, v)
    }
}

/// `dst[j*ld + i] = src[i*row_stride + j]` for `i < rows` and `j < len`: the first `len`
/// values of `rows` rows (the channel planes of one image row, or channels-last pixels)
/// transposed.
#[inline(always)]
pub fn transpose<L: Lanes, S: Dst>(
    src: &[f32],
    (rows, len, row_stride): (usize, usize, usize),
    dst: &mut [S],
    ld: usize,
) {
    for i0 in (0..rows).step_by(L::N) {
        let block_rows = (rows - i0).min(L::N);
        for j0 in (0..len).step_by(L::N) {
            let block_len = (len - j0).min(L::N);
            // 16: `Lanes::transpose`'s block, the widest level's lanes.
            let mut block = [L::zero(); 16];
            for (i, v) in block.iter_mut().enumerate().take(block_rows) {
                *v = L::load_first(src, (i0 + i) * row_stride + j0, block_len);
            }
            L::transpose(&mut block);
            for (j, &column) in block.iter().take(block_len).enumerate() {
                S::store_first::<L>(dst, (j0 + j) * ld + i0, block_rows, column);
            }
        }
    }
}
