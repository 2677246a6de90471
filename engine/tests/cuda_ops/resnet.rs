//! One ResNet-8 training step (forward, ARB-Loss with batch counts, backward, SGD) on the
//! CPU and on the GPU from the same weights and batch.
//!
//! Tolerance: 1e-3 relative in f32 (by the measure in the module docs of `cuda_ops.rs`),
//! because eight layers of differently ordered sums, with batch norm dividing by batch
//! statistics, compound the per-op 1e-5; 1e-8 in f64.
use crate::{input, Outputs};
use arbor_engine::ops::loss::{Criterion, LossKind, Reduction, Target};
use arbor_engine::optim::Sgd;
use arbor_engine::{DType, Device, Result};
use arbor_models::resnet::{Arch, ResNet};

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
    let Some(gpu) = crate::gpu("resnet8_training_step") else {
        return;
    };
    for (dt, rel) in [(DType::F32, 1e-3), (DType::F64, 1e-8)] {
        let cpu = training_step(Device::Cpu, dt).expect("CPU step");
        let cuda = training_step(gpu, dt).expect("GPU step");
        crate::compare("resnet8_training_step", dt, &cpu, &cuda, rel);
    }
}
