//! The fused block ops, `add_relu` (a kernel of its own on the GPU) and
//! `batch_norm2d_relu` (composed there of batch-norm and ReLU kernels): CPU vs GPU,
//! forward, backward and the running statistics.
use crate::{backprop, grad, input, param, Outputs};
use arbor_engine::{no_grad, DType, Device, Result};

device_test!(add_relu, 1e-5, |dev: Device,
                              dt: DType|
 -> Result<Outputs> {
    // Odd sizes, so the grid-stride loop's tail is covered; values either side of 0.
    let a = param(dev, dt, &[3, 5, 7, 9], 600, -1.0, 1.0);
    let b = param(dev, dt, &[3, 5, 7, 9], 601, -1.0, 1.0);
    let y = a.add_relu(&b)?;
    backprop(&[&y], 602)?;
    Ok(outputs!["y" => y, "da" => grad(&a), "db" => grad(&b)])
});

device_test!(batch_norm2d_relu, 1e-5, |dev: Device,
                                       dt: DType|
 -> Result<Outputs> {
    let x = param(dev, dt, &[4, 3, 5, 5], 610, -2.0, 3.0);
    let gamma = param(dev, dt, &[3], 611, 0.5, 1.5);
    let beta = param(dev, dt, &[3], 612, -0.5, 0.5);
    let running_mean = input(dev, dt, &[3], 613, -0.1, 0.1);
    let running_var = input(dev, dt, &[3], 614, 0.9, 1.1);
    let (m, v) = (&running_mean, &running_var);
    let y = x.batch_norm2d_relu(&gamma, &beta, m, v, true, 0.1, 1e-5)?;
    backprop(&[&y], 615)?;
    // Evaluation, untaped: the fused evaluation path.
    let x2 = input(dev, dt, &[2, 3, 4, 4], 616, -2.0, 3.0);
    let y2 = no_grad(|| x2.batch_norm2d_relu(&gamma, &beta, m, v, false, 0.1, 1e-5))?;
    Ok(outputs![
        "train y" => y, "dx" => grad(&x), "dgamma" => grad(&gamma), "dbeta" => grad(&beta),
        "running mean" => running_mean.clone(), "running var" => running_var.clone(),
        "eval y" => y2,
    ])
});
