//! conv2d as im2col + cuBLAS GEMM (`cuda/kernels/conv.cu`), over chunks of images so
//! the column buffer stays bounded whatever the batch size.
//!
//! With `K = c_in kh kw` and `P = h_out w_out`, per image `n`:
//! - forward: `col[n] = im2col(x[n])` `[K, P]`, `y[n] = W [c_out, K] col[n]`;
//! - input grad: `dcol[n] = W^T dy[n]`, `dx[n] = col2im(dcol[n])`;
//! - weight grad: `dW = sum_n dy[n] col[n]^T`: a strided-batched GEMM gives each image's
//!   product, and a second GEMM with a row of ones sums them into `dW` (`beta = 1` keeps
//!   the chunks before it).
use super::{zeros, GpuFloat, GpuResult};
use crate::backend::Conv2dParams;
use arbor_cuda::ops::conv::{col2im_images, im2col_images};
use arbor_cuda::ops::matmul::GemmShape;
use arbor_cuda::ops::memory::fill;
use arbor_cuda::ops::window::Window2d;
use arbor_cuda::{CudaSlice, GpuDevice};

/// Scratch buffers per chunk are kept under this many elements (256 MiB of f32).
const CHUNK_BUDGET: usize = 1 << 26;

/// `K` and `P` of the module docs.
fn sizes(p: &Conv2dParams) -> (usize, usize) {
    (p.c_in * p.kh * p.kw, p.h_out() * p.w_out())
}

/// `(first image, image count)` of each chunk, sized so that `scratch_per_image` elements
/// per image fit the budget (at least one image per chunk).
fn chunks(batch: usize, scratch_per_image: usize) -> impl Iterator<Item = (usize, usize)> {
    let size = (CHUNK_BUDGET / scratch_per_image.max(1)).clamp(1, batch.max(1));
    (0..batch)
        .step_by(size)
        .map(move |first| (first, size.min(batch - first)))
}

/// The im2col geometry of `images` images.
fn window(p: &Conv2dParams, images: usize) -> GpuResult<Window2d> {
    Window2d::new(
        [images, p.c_in, p.h_in, p.w_in],
        [p.kh, p.kw],
        [p.stride.0, p.stride.1],
        [p.padding.0, p.padding.1],
    )
}

pub(super) fn forward<T: GpuFloat>(
    dev: &GpuDevice,
    x: &CudaSlice<T>,
    w: &CudaSlice<T>,
    p: &Conv2dParams,
) -> GpuResult<CudaSlice<T>> {
    let (k, pix) = sizes(p);
    let image_out = p.c_out * pix;
    let mut y = dev.alloc_zeros::<T>(p.batch * image_out)?;
    for (first, n) in chunks(p.batch, k * pix) {
        let g = window(p, n)?;
        let mut col = dev.alloc_zeros::<T>(g.col_len())?;
        im2col_images(dev, &g, x, first, &mut col)?;
        let shape = GemmShape {
            batch: n,
            m: p.c_out,
            n: pix,
            k,
            trans_a: false,
            trans_b: false,
            stride_a: 0,
            stride_b: k * pix,
        };
        let mut out = y.slice_mut(first * image_out..(first + n) * image_out);
        T::blas_gemm(dev, &shape, w, &col, &mut out, T::ONE, T::ZERO)?;
    }
    Ok(y)
}

/// dL/dx from dL/dy `g`.
pub(super) fn input_grad<T: GpuFloat>(
    dev: &GpuDevice,
    g: &CudaSlice<T>,
    w: &CudaSlice<T>,
    p: &Conv2dParams,
) -> GpuResult<CudaSlice<T>> {
    let (k, pix) = sizes(p);
    let image_out = p.c_out * pix;
    let mut dx = dev.alloc_zeros::<T>(p.batch * p.c_in * p.h_in * p.w_in)?;
    for (first, n) in chunks(p.batch, k * pix) {
        let geometry = window(p, n)?;
        let mut dcol = dev.alloc_zeros::<T>(geometry.col_len())?;
        // W is stored [c_out, K]: read transposed it is the [K, c_out] factor.
        let shape = GemmShape {
            batch: n,
            m: k,
            n: pix,
            k: p.c_out,
            trans_a: true,
            trans_b: false,
            stride_a: 0,
            stride_b: image_out,
        };
        let dy = g.slice(first * image_out..(first + n) * image_out);
        T::blas_gemm(dev, &shape, w, &dy, &mut dcol, T::ONE, T::ZERO)?;
        col2im_images(dev, &geometry, &dcol, &mut dx, first)?;
    }
    Ok(dx)
}

/// dL/dW from dL/dy `g` and the forward input `x`.
pub(super) fn weight_grad<T: GpuFloat>(
    dev: &GpuDevice,
    g: &CudaSlice<T>,
    x: &CudaSlice<T>,
    p: &Conv2dParams,
) -> GpuResult<CudaSlice<T>> {
    let (k, pix) = sizes(p);
    let (image_out, w_len) = (p.c_out * pix, p.c_out * k);
    let mut dw = zeros::<T>(dev, w_len)?;
    let mut ones: Option<CudaSlice<T>> = None;
    // Per image: its column buffer and its [c_out, K] product.
    for (first, n) in chunks(p.batch, k * pix + w_len) {
        let geometry = window(p, n)?;
        let mut col = dev.alloc_zeros::<T>(geometry.col_len())?;
        im2col_images(dev, &geometry, x, first, &mut col)?;
        // dy[n] [c_out, P] times col[n]^T (col[n] is stored [K, P]).
        let per_image = GemmShape {
            batch: n,
            m: p.c_out,
            n: k,
            k: pix,
            trans_a: false,
            trans_b: true,
            stride_a: image_out,
            stride_b: k * pix,
        };
        let dy = g.slice(first * image_out..(first + n) * image_out);
        let mut products = dev.alloc_zeros::<T>(n * w_len)?;
        T::blas_gemm(dev, &per_image, &dy, &col, &mut products, T::ONE, T::ZERO)?;
        // dW [1, c_out K] += ones [1, n] products [n, c_out K].
        let ones = match &mut ones {
            Some(o) => o,
            slot => {
                let mut o = dev.alloc_zeros::<T>(n)?;
                fill(dev, &mut o, T::ONE)?;
                slot.insert(o)
            }
        };
        let sum = GemmShape {
            batch: 1,
            m: 1,
            n: w_len,
            k: n,
            trans_a: false,
            trans_b: false,
            stride_a: 0,
            stride_b: 0,
        };
        T::blas_gemm(
            dev,
            &sum,
            &ones.slice(..n),
            &products,
            &mut dw,
            T::ONE,
            T::ONE,
        )?;
    }
    Ok(dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_within_the_budget() {
        let all: Vec<_> = chunks(10, CHUNK_BUDGET / 4).collect();
        assert_eq!(all, vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(chunks(3, 1).collect::<Vec<_>>(), vec![(0, 3)]);
        // An image larger than the budget still gets a chunk of its own.
        assert_eq!(chunks(2, CHUNK_BUDGET * 2).count(), 2);
        assert_eq!(chunks(0, 5).count(), 0);
    }
}
