//! conv2d, batch norm, pooling, softmax and the SGD update: CPU vs GPU.
use crate::{backprop, grad, input, param, Outputs};
use arbor_engine::optim::Sgd;
use arbor_engine::{DType, Device, Result, Tensor};

/// (input, weight, stride, padding): padding, strides, a non-square kernel, a 1x1
/// stride-2 projection (ResNet-50's downsample) and a kernel as large as the image.
type ConvCase = ([usize; 4], [usize; 4], (usize, usize), (usize, usize));
const CONVS: [ConvCase; 4] = [
    ([2, 3, 9, 9], [4, 3, 3, 3], (1, 1), (1, 1)),
    ([3, 4, 8, 7], [5, 4, 3, 2], (2, 1), (1, 0)),
    ([2, 6, 8, 8], [8, 6, 1, 1], (2, 2), (0, 0)),
    ([2, 2, 5, 5], [3, 2, 5, 5], (1, 1), (2, 2)),
];

device_test!(conv2d, 1e-5, |dev: Device, dt: DType| -> Result<Outputs> {
    let mut out = Vec::new();
    for (i, (xs, ws, stride, pad)) in CONVS.into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = param(dev, dt, &xs, seed, -1.0, 1.0);
        let w = param(dev, dt, &ws, seed + 1, -0.5, 0.5);
        let b = param(dev, dt, &[ws[0]], seed + 2, -0.5, 0.5);
        let y = x.conv2d(&w, Some(&b), stride, pad)?;
        backprop(&[&y], seed + 3)?;
        out.extend(outputs![
            format!("y {i}") => y,
            format!("dx {i}") => grad(&x),
            format!("dw {i}") => grad(&w),
            format!("db {i}") => grad(&b),
        ]);
    }
    Ok(out)
});

device_test!(batch_norm, 1e-5, |dev: Device,
                                dt: DType|
 -> Result<Outputs> {
    let x = param(dev, dt, &[4, 3, 5, 5], 200, -2.0, 3.0);
    let gamma = param(dev, dt, &[3], 201, 0.5, 1.5);
    let beta = param(dev, dt, &[3], 202, -0.5, 0.5);
    let running_mean = input(dev, dt, &[3], 203, -0.1, 0.1);
    let running_var = input(dev, dt, &[3], 204, 0.9, 1.1);
    let (m, v) = (&running_mean, &running_var);
    let y = x.batch_norm2d(&gamma, &beta, m, v, true, 0.1, 1e-5)?;
    backprop(&[&y], 205)?;
    let mut out = outputs![
        "train y" => y, "dx" => grad(&x), "dgamma" => grad(&gamma), "dbeta" => grad(&beta),
        "running mean" => running_mean.clone(), "running var" => running_var.clone(),
    ];
    // Evaluation mode: the running statistics, and the backward through composite ops.
    let x2 = param(dev, dt, &[2, 3, 4, 4], 206, -2.0, 3.0);
    let (g2, b2) = (
        gamma.detach().into_parameter(),
        beta.detach().into_parameter(),
    );
    let y2 = x2.batch_norm2d(&g2, &b2, m, v, false, 0.1, 1e-5)?;
    backprop(&[&y2], 207)?;
    out.extend(outputs![
        "eval y" => y2, "eval dx" => grad(&x2), "eval dgamma" => grad(&g2),
        "eval dbeta" => grad(&b2),
    ]);
    Ok(out)
});

device_test!(pooling, 1e-5, |dev: Device, dt: DType| -> Result<Outputs> {
    let x = param(dev, dt, &[2, 3, 9, 9], 300, -1.0, 1.0);
    let ys = [
        x.max_pool2d((3, 3), (2, 2), (1, 1))?,
        x.max_pool2d((2, 2), (2, 2), (0, 0))?,
        x.avg_pool2d((3, 3), (2, 2), (1, 1))?,
        x.avg_pool2d((2, 3), (1, 2), (1, 0))?,
        x.global_avg_pool2d()?,
    ];
    backprop(&ys.iter().collect::<Vec<_>>(), 301)?;
    let names = [
        "max 3x3/2 pad 1",
        "max 2x2/2",
        "avg 3x3/2 pad 1",
        "avg 2x3",
        "global avg",
    ];
    let mut out: Outputs = names.iter().map(|n| n.to_string()).zip(ys).collect();
    out.push(("dx".into(), grad(&x)));
    Ok(out)
});

device_test!(softmax_rows, 1e-5, |dev: Device,
                                  dt: DType|
 -> Result<Outputs> {
    let mut out = Vec::new();
    // 40 columns: a warp per row; 1500: a block per row.
    for (i, shape) in [[5, 40], [3, 1500]].into_iter().enumerate() {
        let x = param(dev, dt, &shape, 400 + i as u64, -4.0, 4.0);
        let (s, l) = (x.softmax()?, x.log_softmax()?);
        backprop(&[&s, &l], 410 + 10 * i as u64)?;
        out.extend(outputs![
            format!("softmax {i}") => s,
            format!("log_softmax {i}") => l,
            format!("dx {i}") => grad(&x),
        ]);
    }
    Ok(out)
});

device_test!(sgd_steps, 1e-5, |dev: Device,
                               dt: DType|
 -> Result<Outputs> {
    let w = param(dev, dt, &[6, 4], 500, -1.0, 1.0);
    let b = param(dev, dt, &[6], 501, -1.0, 1.0);
    let x = input(dev, dt, &[5, 4], 502, -1.0, 1.0);
    let mut sgd = Sgd::new(vec![w.clone(), b.clone()], 0.1, 0.9, 5e-4)?;
    for step in 0..3 {
        sgd.zero_grad();
        let y = x.linear(&w, Some(&b))?;
        backprop(&[&y.relu()?], 503 + step)?;
        sgd.step()?;
    }
    let velocities = sgd.state()?.velocities;
    let mut out = outputs!["w" => w, "b" => b];
    for (i, v) in velocities.into_iter().enumerate() {
        let v = v.expect("every parameter stepped");
        let n = v.len();
        out.push((
            format!("velocity {i}"),
            Tensor::from_vec(v, [n])?.to_device(dev)?,
        ));
    }
    Ok(out)
});
