//! One ResNet-8 training step (forward, ARB-Loss with batch counts, backward, SGD) on the
//! CPU and on the GPU from the same weights and batch: the engine's CUDA backend under the
//! models' ResNet and loss (the engine's own CPU-vs-GPU op tests are
//! `engine/tests/cuda_ops.rs`).
//!
//! Tolerance: 1e-3 relative in f32 by the measure of `cuda_ops.rs` (`|gpu - cpu| /
//! max(|cpu|, 1e-3 max |cpu|)`), because eight layers of differently ordered sums, with
//! batch norm dividing by batch statistics, compound the per-op 1e-5; 1e-8 in f64.
//!
//! Without a GPU the test prints `SKIPPED: <test>: <reason>` and passes; with a GPU that
//! fails to open, it fails.
#![cfg(feature = "cuda")]

use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{Reduction, Target};
use arbor_engine::optim::Sgd;
use arbor_engine::{DType, Device, Result, Tensor};
use arbor_models::loss::{Criterion, LossKind};
use arbor_models::resnet::{Arch, ResNet};

/// Named tensors of one run.
type Outputs = Vec<(String, Tensor)>;

/// cuda:0, or `None` after printing why `test` is skipped.
fn gpu(test: &str) -> Option<Device> {
    if let Err(why) = arbor_cuda::gpu_available() {
        eprintln!("SKIPPED: {test}: {why}");
        return None;
    }
    if let Err(e) = arbor_engine::cuda::device(0) {
        panic!("{test}: a GPU is present but cuda:0 could not be opened: {e}");
    }
    Some(Device::Cuda(0))
}

/// A constant of `shape` with values uniform in `[lo, hi)` from `seed`, on `dev`.
fn input(dev: Device, dt: DType, shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(SplitMix::new(seed).vec(n, lo, hi), shape.to_vec())
        .and_then(|t| t.to_dtype(dt))
        .and_then(|t| t.to_device(dev))
        .expect("test input")
}

/// Every output of the GPU run against the CPU run's (see the module docs for the measure).
fn compare(dt: DType, cpu: &Outputs, gpu: &Outputs, rel: f64) {
    assert_eq!(cpu.len(), gpu.len(), "output count");
    for ((name, c), (_, g)) in cpu.iter().zip(gpu) {
        assert_eq!(c.dims(), g.dims(), "{dt} {name}: shape");
        assert_eq!(g.device(), Device::Cuda(0), "{dt} {name}: left the GPU");
        let (want, got) = (c.to_vec_f64().unwrap(), g.to_vec_f64().unwrap());
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let floor = (1e-3 * scale).max(f64::MIN_POSITIVE);
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            let err = (g - w).abs() / w.abs().max(floor);
            assert!(
                err <= rel || (w.is_nan() && g.is_nan()),
                "{dt} {name}[{i}]: cpu {w}, gpu {g} (relative gap {err:.2e} > {rel:.0e})"
            );
        }
    }
}

const CLASSES: usize = 10;
const BATCH: usize = 8;

fn training_step(dev: Device, dt: DType) -> Result<Outputs> {
    let mut model = ResNet::new(Arch::ResNet8, CLASSES, dt, 11)?;
    model.to_device(dev)?;
    let mut sgd = Sgd::new(model.parameters(), 0.1, 0.9, 5e-4)?;
    let counts: Vec<f64> = (0..CLASSES).map(|j| (100 >> (j / 2)) as f64).collect();
    let criterion = Criterion::new("arb".parse::<LossKind>()?, Reduction::Mean, &counts)?;
    let x = input(dev, dt, &[BATCH, 3, 32, 32], 12, -2.0, 2.0);
    let labels: Vec<usize> = (0..BATCH).map(|i| (i * 3) % CLASSES).collect();

    let logits = model.forward(&x)?;
    let loss = criterion.loss(&logits, &Target::Hard(labels), 1)?;
    sgd.zero_grad();
    loss.backward()?;
    let (params, buffers) = model.named();
    let mut out = vec![("logits".to_string(), logits), ("loss".to_string(), loss)];
    for p in &params {
        let g = p.tensor.grad().expect("every parameter gets a gradient");
        out.push((format!("d {}", p.name), g));
    }
    sgd.step()?;
    // Batch norm's num_batches_tracked counters stay on the host by design (counting
    // costs no device work), so they are not GPU outputs to compare.
    let on_device = buffers
        .iter()
        .filter(|n| !n.name.ends_with("num_batches_tracked"));
    for n in params.iter().chain(on_device) {
        out.push((format!("stepped {}", n.name), n.tensor.clone()));
    }
    Ok(out)
}

#[test]
fn resnet8_training_step() {
    let Some(gpu) = gpu("resnet8_training_step") else {
        return;
    };
    for (dt, rel) in [(DType::F32, 1e-3), (DType::F64, 1e-8)] {
        let cpu = training_step(Device::Cpu, dt).expect("CPU step");
        let cuda = training_step(gpu, dt).expect("GPU step");
        compare(dt, &cpu, &cuda, rel);
    }
}
