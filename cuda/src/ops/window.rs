//! [`Window2d`]: the geometry of a 2-D sliding window over an NCHW tensor, shared by
//! im2col / col2im and the pooling kernels.

use crate::error::{shape_error, Result};
use cudarc::driver::DeviceRepr;

/// Input size, window, stride and padding of a conv2d or pool2d over NCHW, plus the
/// output size they imply. Laid out exactly as `struct Window2d` in `common.cuh`, so it
/// is passed to kernels by value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    /// Batch size N.
    pub n: i32,
    /// Channels C.
    pub c: i32,
    /// Input height H.
    pub h: i32,
    /// Input width W.
    pub w: i32,
    /// Window height.
    pub kh: i32,
    /// Window width.
    pub kw: i32,
    /// Vertical stride.
    pub stride_h: i32,
    /// Horizontal stride.
    pub stride_w: i32,
    /// Zero padding above and below.
    pub pad_h: i32,
    /// Zero padding left and right.
    pub pad_w: i32,
    /// Output height OH = (H + 2 pad_h - kh) / stride_h + 1.
    pub out_h: i32,
    /// Output width OW = (W + 2 pad_w - kw) / stride_w + 1.
    pub out_w: i32,
}

// SAFETY: plain `repr(C)` integers, the same layout as the CUDA struct.
unsafe impl DeviceRepr for Window2d {}

impl Window2d {
    /// The geometry for input `[n, c, h, w]`, window `[kh, kw]`, `stride` and `padding`
    /// (each as (vertical, horizontal)). Errors if the window does not fit.
    pub fn new(
        input: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Self> {
        let [n, c, h, w] = input;
        let out = |size: usize, k: usize, s: usize, p: usize| -> Result<usize> {
            if k == 0 || s == 0 {
                return Err(shape_error("window and stride must be positive"));
            }
            if size + 2 * p < k {
                return Err(shape_error(format!(
                    "window {k} larger than padded input {}",
                    size + 2 * p
                )));
            }
            Ok((size + 2 * p - k) / s + 1)
        };
        let out_h = out(h, kernel[0], stride[0], padding[0])?;
        let out_w = out(w, kernel[1], stride[1], padding[1])?;
        let to_i32 = |v: usize| {
            i32::try_from(v)
                .map_err(|_| shape_error(format!("window geometry value {v} exceeds i32")))
        };
        Ok(Self {
            n: to_i32(n)?,
            c: to_i32(c)?,
            h: to_i32(h)?,
            w: to_i32(w)?,
            kh: to_i32(kernel[0])?,
            kw: to_i32(kernel[1])?,
            stride_h: to_i32(stride[0])?,
            stride_w: to_i32(stride[1])?,
            pad_h: to_i32(padding[0])?,
            pad_w: to_i32(padding[1])?,
            out_h: to_i32(out_h)?,
            out_w: to_i32(out_w)?,
        })
    }

    /// Elements of the input, N*C*H*W.
    pub fn input_len(&self) -> usize {
        [self.n, self.c, self.h, self.w]
            .iter()
            .map(|&d| d as usize)
            .product()
    }

    /// Elements of the output, N*C*OH*OW.
    pub fn output_len(&self) -> usize {
        [self.n, self.c, self.out_h, self.out_w]
            .iter()
            .map(|&d| d as usize)
            .product()
    }

    /// Rows of one image's im2col matrix, C*KH*KW (the GEMM's K).
    pub fn col_rows(&self) -> usize {
        (self.c * self.kh * self.kw) as usize
    }

    /// Columns of one image's im2col matrix, OH*OW.
    pub fn col_cols(&self) -> usize {
        (self.out_h * self.out_w) as usize
    }

    /// Elements of the whole column buffer, N * C*KH*KW * OH*OW.
    pub fn col_len(&self) -> usize {
        self.n as usize * self.col_rows() * self.col_cols()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_matches_the_conv_formula() {
        let g = Window2d::new([2, 3, 32, 32], [3, 3], [1, 1], [1, 1]).unwrap();
        assert_eq!((g.out_h, g.out_w), (32, 32));
        let g = Window2d::new([1, 1, 7, 5], [3, 2], [2, 1], [0, 1]).unwrap();
        assert_eq!((g.out_h, g.out_w), (3, 6));
        assert_eq!(g.col_rows(), 6);
        assert!(Window2d::new([1, 1, 2, 2], [5, 5], [1, 1], [0, 0]).is_err());
    }
}
