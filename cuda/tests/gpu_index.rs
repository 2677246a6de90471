//! The index kernels (`index.cu`) against host loops: index_select, gather and their
//! scatter-add backwards, the option-A shortcut and concat (whose backwards are the
//! engine's strided copies).

mod common;

use arbor_cuda::ops::index::*;
use arbor_cuda::ops::AxisDims;
use common::*;

#[test]
fn index_select_and_gather_with_repeated_indices() {
    let Some(dev) = gpu("index_select_and_gather_with_repeated_indices") else {
        return;
    };
    let d = AxisDims {
        outer: 3,
        axis: 5,
        inner: 4,
    };
    let mut rng = Rng::new(31);
    let x = rng.vec(d.len(), -1.0, 1.0);
    let x_dev = dev.upload(&x).unwrap();
    let at = |o: usize, r: usize, i: usize| (o * d.axis + r) * d.inner + i;

    // index_select with a repeated index: the backward must add both contributions.
    let idx = [4i32, 0, 4, 2];
    let idx_dev = dev.upload(&idx).unwrap();
    let mut y = dev
        .alloc_zeros::<f64>(d.outer * idx.len() * d.inner)
        .unwrap();
    index_select_fwd(&dev, &x_dev, d, &idx_dev, &mut y).unwrap();
    let mut want = Vec::new();
    for o in 0..d.outer {
        for &r in &idx {
            want.extend((0..d.inner).map(|i| x[at(o, r as usize, i)]));
        }
    }
    assert_eq!(dev.download(&y).unwrap(), want);
    let dy = rng.vec(want.len(), -1.0, 1.0);
    let mut dx = dev.alloc_zeros::<f64>(d.len()).unwrap();
    index_select_bwd(&dev, &dev.upload(&dy).unwrap(), &idx_dev, &mut dx, d).unwrap();
    let mut want_dx = vec![0.0; d.len()];
    for o in 0..d.outer {
        for (k, &r) in idx.iter().enumerate() {
            for i in 0..d.inner {
                want_dx[at(o, r as usize, i)] += dy[(o * idx.len() + k) * d.inner + i];
            }
        }
    }
    assert_close(
        "index_select_bwd",
        &dev.download(&dx).unwrap(),
        &want_dx,
        1e-15,
        1e-15,
    );

    // gather: per-element indices [outer, 2, inner].
    let count = 2;
    let gidx: Vec<i32> = (0..d.outer * count * d.inner)
        .map(|_| rng.below(d.axis) as i32)
        .collect();
    let gidx_dev = dev.upload(&gidx).unwrap();
    let mut g = dev.alloc_zeros::<f64>(gidx.len()).unwrap();
    gather_fwd(&dev, &x_dev, d, &gidx_dev, &mut g).unwrap();
    let want: Vec<f64> = (0..gidx.len())
        .map(|e| {
            let (o, i) = (e / (count * d.inner), e % d.inner);
            x[at(o, gidx[e] as usize, i)]
        })
        .collect();
    assert_eq!(dev.download(&g).unwrap(), want);
    let dg = rng.vec(gidx.len(), -1.0, 1.0);
    let mut dx = dev.alloc_zeros::<f64>(d.len()).unwrap();
    gather_bwd(&dev, &dev.upload(&dg).unwrap(), &gidx_dev, &mut dx, d).unwrap();
    let mut want_dx = vec![0.0; d.len()];
    for e in 0..gidx.len() {
        let (o, i) = (e / (count * d.inner), e % d.inner);
        want_dx[at(o, gidx[e] as usize, i)] += dg[e];
    }
    assert_close(
        "gather_bwd",
        &dev.download(&dx).unwrap(),
        &want_dx,
        1e-15,
        1e-15,
    );

    // An index tensor that does not tile [outer, count, inner] is an error.
    let bad = dev.upload(&[0i32; 5]).unwrap();
    assert!(gather_fwd(&dev, &x_dev, d, &bad, &mut g).is_err());
}

#[test]
fn option_a_shortcut_pads_channels_and_subsamples() {
    let Some(dev) = gpu("option_a_shortcut_pads_channels_and_subsamples") else {
        return;
    };
    // ResNet-32 stage change: 16 -> 32 channels, 32x32 -> 16x16, 8 zero channels each side.
    for (input, c_out, pad, stride) in [
        ([2, 16, 32, 32], 32, 8, 2),
        ([1, 3, 5, 7], 7, 2, 2),
        ([1, 2, 3, 3], 2, 0, 1),
    ] {
        let g = PadSubsample::new(input, c_out, pad, stride).unwrap();
        let [n, c_in, h, w] = input;
        let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
        let mut rng = Rng::new(41);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let mut y = dev.alloc_zeros::<f32>(g.output_len()).unwrap();
        channel_pad_subsample_fwd(&dev, &g, &dev.upload(&to_t::<f32>(&x)).unwrap(), &mut y)
            .unwrap();
        let x32 = to_f64(&to_t::<f32>(&x));
        let mut want = vec![0.0; g.output_len()];
        for b in 0..n {
            for c in 0..c_in {
                for oy in 0..oh {
                    for ox in 0..ow {
                        want[((b * c_out + c + pad) * oh + oy) * ow + ox] =
                            x32[((b * c_in + c) * h + oy * stride) * w + ox * stride];
                    }
                }
            }
        }
        assert_eq!(to_f64(&dev.download(&y).unwrap()), want);
    }
    assert!(PadSubsample::new([1, 16, 8, 8], 20, 8, 2).is_err());
}

#[test]
fn concat_places_each_input() {
    let Some(dev) = gpu("concat_places_each_input") else {
        return;
    };
    // Concatenate [2, 3, 4] and [2, 5, 4] along axis 1 into [2, 8, 4].
    let a: Vec<f64> = (0..24).map(f64::from).collect();
    let b: Vec<f64> = (100..140).map(f64::from).collect();
    let (da, db) = (
        AxisDims {
            outer: 2,
            axis: 3,
            inner: 4,
        },
        AxisDims {
            outer: 2,
            axis: 5,
            inner: 4,
        },
    );
    let mut y = dev.alloc_zeros::<f64>(64).unwrap();
    concat_fwd(&dev, &dev.upload(&a).unwrap(), da, &mut y, 8, 0).unwrap();
    concat_fwd(&dev, &dev.upload(&b).unwrap(), db, &mut y, 8, 3).unwrap();
    let want: Vec<f64> = (0..2)
        .flat_map(|o| {
            [
                a[o * 12..(o + 1) * 12].to_vec(),
                b[o * 20..(o + 1) * 20].to_vec(),
            ]
            .concat()
        })
        .collect();
    assert_eq!(dev.download(&y).unwrap(), want);
    assert!(concat_fwd(&dev, &dev.upload(&b).unwrap(), db, &mut y, 8, 4).is_err());
}
