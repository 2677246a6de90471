//! Max and average pooling against host loops.

mod common;

use arbor_cuda::ops::pool::*;
use common::window::{at, geometries, window};
use common::*;

#[test]
fn pooling_matches_host() {
    let Some(dev) = gpu("pooling_matches_host") else {
        return;
    };
    for g in geometries() {
        let mut rng = Rng::new(7 + g.input_len() as u64);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let dy = rng.vec(g.output_len(), -1.0, 1.0);
        let (x_dev, dy_dev) = (dev.upload(&x).unwrap(), dev.upload(&dy).unwrap());
        let mut y = dev.alloc_zeros::<f64>(g.output_len()).unwrap();
        let mut argmax = dev.alloc_zeros::<i32>(g.output_len()).unwrap();
        let mut dx = dev.alloc_zeros::<f64>(g.input_len()).unwrap();
        let (mut want_max, mut want_idx, mut want_avg) = (Vec::new(), Vec::new(), Vec::new());
        let mut want_dx_max = vec![0.0; g.input_len()];
        let mut want_dx_avg = vec![0.0; g.input_len()];
        let area = (g.kh * g.kw) as f64;
        let plane = (g.h * g.w) as usize;
        let mut o = 0;
        for n in 0..g.n as usize {
            for c in 0..g.c as usize {
                for oy in 0..g.out_h as usize {
                    for ox in 0..g.out_w as usize {
                        let (mut best, mut best_idx, mut sum) = (f64::NEG_INFINITY, -1i64, 0.0);
                        for (_, _, iy, ix) in window(&g, oy, ox) {
                            if let Some(v) = at(&x, &g, n, c, iy, ix) {
                                let flat = iy * g.w as i64 + ix;
                                if best_idx < 0 || v > best {
                                    (best, best_idx) = (v, flat);
                                }
                                sum += v;
                                want_dx_avg[(n * g.c as usize + c) * plane + flat as usize] +=
                                    dy[o] / area;
                            }
                        }
                        want_max.push(best);
                        want_idx.push(best_idx as i32);
                        want_avg.push(sum / area);
                        want_dx_max[(n * g.c as usize + c) * plane + best_idx as usize] += dy[o];
                        o += 1;
                    }
                }
            }
        }
        max_pool2d_fwd(&dev, &g, &x_dev, &mut y, &mut argmax).unwrap();
        assert_eq!(dev.download(&y).unwrap(), want_max, "max_pool2d {g:?}");
        assert_eq!(
            dev.download(&argmax).unwrap(),
            want_idx,
            "max_pool2d argmax {g:?}"
        );
        max_pool2d_bwd(&dev, &g, &dy_dev, &argmax, &mut dx).unwrap();
        assert_close(
            "max_pool2d_bwd",
            &dev.download(&dx).unwrap(),
            &want_dx_max,
            1e-12,
            1e-15,
        );
        avg_pool2d_fwd(&dev, &g, &x_dev, &mut y).unwrap();
        assert_close(
            "avg_pool2d",
            &dev.download(&y).unwrap(),
            &want_avg,
            1e-12,
            1e-15,
        );
        avg_pool2d_bwd(&dev, &g, &dy_dev, &mut dx).unwrap();
        assert_close(
            "avg_pool2d_bwd",
            &dev.download(&dx).unwrap(),
            &want_dx_avg,
            1e-12,
            1e-15,
        );
    }
}
