//! Host-side sliding-window helpers shared by the conv and pooling tests.

use arbor_cuda::ops::window::Window2d;

/// x[n, c, iy, ix] with iy, ix possibly in the padding (then 0).
pub fn at(x: &[f64], g: &Window2d, n: usize, c: usize, iy: i64, ix: i64) -> Option<f64> {
    let (h, w) = (g.h as i64, g.w as i64);
    if iy < 0 || ix < 0 || iy >= h || ix >= w {
        return None;
    }
    Some(x[((n * g.c as usize + c) * g.h as usize + iy as usize) * g.w as usize + ix as usize])
}

/// The input positions of output (oy, ox)'s window: (ky, kx, iy, ix).
pub fn window(g: &Window2d, oy: usize, ox: usize) -> Vec<(usize, usize, i64, i64)> {
    let mut out = Vec::new();
    for ky in 0..g.kh as usize {
        for kx in 0..g.kw as usize {
            let iy = (oy * g.stride_h as usize + ky) as i64 - g.pad_h as i64;
            let ix = (ox * g.stride_w as usize + kx) as i64 - g.pad_w as i64;
            out.push((ky, kx, iy, ix));
        }
    }
    out
}

pub fn geometries() -> Vec<Window2d> {
    vec![
        Window2d::new([2, 3, 8, 8], [3, 3], [1, 1], [1, 1]).unwrap(),
        Window2d::new([2, 4, 9, 7], [3, 3], [2, 2], [1, 1]).unwrap(),
        Window2d::new([1, 2, 7, 10], [2, 3], [2, 1], [0, 1]).unwrap(),
        Window2d::new([3, 2, 5, 5], [1, 1], [2, 2], [0, 0]).unwrap(),
    ]
}
