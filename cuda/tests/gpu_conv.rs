//! im2col / col2im and cuBLAS GEMM (and conv2d built from them) against host references.

mod common;

use arbor_cuda::ops::conv::{col2im, col2im_images, im2col, im2col_images};
use arbor_cuda::ops::matmul::{gemm, GemmShape};
use arbor_cuda::ops::window::Window2d;
use common::window::{at, geometries, window};
use common::*;

#[test]
fn im2col_gemm_conv_and_col2im_adjoint() {
    let Some(dev) = gpu("im2col_gemm_conv_and_col2im_adjoint") else {
        return;
    };
    for g in geometries() {
        let mut rng = Rng::new(g.input_len() as u64);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let x_dev = dev.upload(&x).unwrap();
        let mut col = dev.alloc_zeros::<f64>(g.col_len()).unwrap();
        im2col(&dev, &g, &x_dev, &mut col).unwrap();
        let col_host = dev.download(&col).unwrap();
        let (rows, cols) = (g.col_rows(), g.col_cols());
        for n in 0..g.n as usize {
            for c in 0..g.c as usize {
                for oy in 0..g.out_h as usize {
                    for ox in 0..g.out_w as usize {
                        for (ky, kx, iy, ix) in window(&g, oy, ox) {
                            let r = (c * g.kh as usize + ky) * g.kw as usize + kx;
                            let got = col_host[(n * rows + r) * cols + oy * g.out_w as usize + ox];
                            assert_eq!(
                                got,
                                at(&x, &g, n, c, iy, ix).unwrap_or(0.0),
                                "im2col {g:?}"
                            );
                        }
                    }
                }
            }
        }

        // col2im is im2col's adjoint: <im2col(x), u> = <x, col2im(u)>.
        let u = rng.vec(g.col_len(), -1.0, 1.0);
        let u_dev = dev.upload(&u).unwrap();
        let mut back = dev.alloc_zeros::<f64>(g.input_len()).unwrap();
        col2im(&dev, &g, &u_dev, &mut back).unwrap();
        let lhs: f64 = col_host.iter().zip(&u).map(|(a, b)| a * b).sum();
        let rhs: f64 = x
            .iter()
            .zip(dev.download(&back).unwrap())
            .map(|(a, b)| a * b)
            .sum();
        assert!(
            (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
            "col2im adjoint {g:?}: {lhs} vs {rhs}"
        );

        // conv2d = weight [OC, C*KH*KW] x col[n], batched with the weight shared.
        let oc = 5;
        let weight = rng.vec(oc * rows, -1.0, 1.0);
        let weight_dev = dev.upload(&to_t::<f32>(&weight)).unwrap();
        let col32 = dev.upload(&to_t::<f32>(&col_host)).unwrap();
        let mut out = dev.alloc_zeros::<f32>(g.n as usize * oc * cols).unwrap();
        let shape = GemmShape {
            batch: g.n as usize,
            m: oc,
            n: cols,
            k: rows,
            trans_a: false,
            trans_b: false,
            stride_a: 0,
            stride_b: rows * cols,
        };
        gemm(&dev, &shape, &weight_dev, &col32, &mut out, 1.0, 0.0).unwrap();
        let w32 = to_f64(&to_t::<f32>(&weight));
        let x32 = to_f64(&to_t::<f32>(&x));
        let mut want = Vec::new();
        let mut bound = Vec::new();
        for n in 0..g.n as usize {
            for o in 0..oc {
                for oy in 0..g.out_h as usize {
                    for ox in 0..g.out_w as usize {
                        let (mut acc, mut mag) = (0.0, 0.0);
                        for c in 0..g.c as usize {
                            for (ky, kx, iy, ix) in window(&g, oy, ox) {
                                let wv = w32[((o * g.c as usize + c) * g.kh as usize + ky)
                                    * g.kw as usize
                                    + kx];
                                let term = wv * at(&x32, &g, n, c, iy, ix).unwrap_or(0.0);
                                acc += term;
                                mag += term.abs();
                            }
                        }
                        want.push(acc);
                        bound.push(mag);
                    }
                }
            }
        }
        let got = to_f64(&dev.download(&out).unwrap());
        for i in 0..want.len() {
            assert!(
                (got[i] - want[i]).abs() <= 1e-5 * bound[i] + 1e-7,
                "conv {g:?}[{i}]: {} vs {}",
                got[i],
                want[i]
            );
        }
    }
}

#[test]
fn gemm_handles_every_transpose_and_batch_stride() {
    let Some(dev) = gpu("gemm_handles_every_transpose_and_batch_stride") else {
        return;
    };
    let (batch, m, n, k) = (3, 7, 5, 9);
    let mut rng = Rng::new(11);
    for (trans_a, trans_b, share_a) in [
        (false, false, false),
        (true, false, false),
        (false, true, true),
        (true, true, false),
    ] {
        let a = rng.vec(batch * m * k, -1.0, 1.0);
        let b = rng.vec(batch * k * n, -1.0, 1.0);
        let c0 = rng.vec(batch * m * n, -1.0, 1.0);
        let stride_a = if share_a { 0 } else { m * k };
        let shape = GemmShape {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            stride_a,
            stride_b: k * n,
        };
        let (a_dev, b_dev) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
        let mut c_dev = dev.upload(&c0).unwrap();
        gemm(&dev, &shape, &a_dev, &b_dev, &mut c_dev, 2.0, 0.5).unwrap();
        let got = dev.download(&c_dev).unwrap();
        for p in 0..batch {
            let a_at =
                |i: usize, l: usize| a[p * stride_a + if trans_a { l * m + i } else { i * k + l }];
            let b_at =
                |l: usize, j: usize| b[p * k * n + if trans_b { j * k + l } else { l * n + j }];
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k).map(|l| a_at(i, l) * b_at(l, j)).sum();
                    let want = 2.0 * dot + 0.5 * c0[(p * m + i) * n + j];
                    let got = got[(p * m + i) * n + j];
                    assert!(
                        (got - want).abs() < 1e-12,
                        "gemm ta={trans_a} tb={trans_b}: {got} vs {want}"
                    );
                }
            }
        }
    }
    // A too-short operand is an error before anything launches.
    let short = dev.alloc_zeros::<f64>(3).unwrap();
    let mut c = dev.alloc_zeros::<f64>(batch * m * n).unwrap();
    let shape = GemmShape {
        batch,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        stride_a: 0,
        stride_b: 0,
    };
    assert!(gemm(&dev, &shape, &short, &short, &mut c, 1.0, 0.0).is_err());
}

/// The chunked variants work on images `first..first + n` of a larger batch: im2col of a
/// chunk is that chunk's part of the whole batch's columns, col2im writes only its chunk,
/// and gemm accepts views into the buffers.
#[test]
fn chunks_of_images_match_the_whole_batch() {
    let Some(dev) = gpu("chunks_of_images_match_the_whole_batch") else {
        return;
    };
    let whole = Window2d::new([5, 3, 6, 7], [3, 3], [2, 1], [1, 1]).unwrap();
    let chunk = Window2d::new([2, 3, 6, 7], [3, 3], [2, 1], [1, 1]).unwrap();
    let x = Rng::new(9).vec(whole.input_len(), -1.0, 1.0);
    let x_dev = dev.upload(&x).unwrap();
    let mut all = dev.alloc_zeros::<f64>(whole.col_len()).unwrap();
    im2col(&dev, &whole, &x_dev, &mut all).unwrap();
    let all = dev.download(&all).unwrap();
    let per_image = whole.col_rows() * whole.col_cols();
    let mut part = dev.alloc_zeros::<f64>(chunk.col_len()).unwrap();
    im2col_images(&dev, &chunk, &x_dev, 3, &mut part).unwrap();
    assert_eq!(
        dev.download(&part).unwrap(),
        all[3 * per_image..5 * per_image]
    );
    // Images 4..6 do not exist.
    assert!(im2col_images(&dev, &chunk, &x_dev, 4, &mut part).is_err());

    let mut dx = dev.upload(&vec![7.0; whole.input_len()]).unwrap();
    col2im_images(&dev, &chunk, &part, &mut dx, 1).unwrap();
    let dx = dev.download(&dx).unwrap();
    let image = whole.input_len() / 5;
    assert!(dx[..image]
        .iter()
        .chain(&dx[3 * image..])
        .all(|&v| v == 7.0));
    let mut want = dev.alloc_zeros::<f64>(chunk.input_len()).unwrap();
    col2im(&dev, &chunk, &part, &mut want).unwrap();
    assert_eq!(dx[image..3 * image], dev.download(&want).unwrap());

    // A product written into the middle of a buffer through views.
    let a = dev.upload(&[1.0f64, 2.0, 3.0, 4.0]).unwrap();
    let mut c = dev.alloc_zeros::<f64>(8).unwrap();
    let shape = GemmShape {
        batch: 1,
        m: 2,
        n: 2,
        k: 1,
        trans_a: false,
        trans_b: false,
        stride_a: 0,
        stride_b: 0,
    };
    let mut middle = c.slice_mut(2..6);
    gemm(
        &dev,
        &shape,
        &a.slice(0..2),
        &a.slice(2..4),
        &mut middle,
        1.0,
        0.0,
    )
    .unwrap();
    assert_eq!(
        dev.download(&c).unwrap(),
        [0.0, 0.0, 3.0, 4.0, 6.0, 8.0, 0.0, 0.0]
    );
}
