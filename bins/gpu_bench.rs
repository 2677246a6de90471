//! GPU benchmarks for `scripts/gpu-check.sh`: the fused loss against a device-to-device
//! copy of the same bytes, and the ResNet-32 training step. Prints a summary and writes
//! `gpu_bench.json` into the folder given as the first argument (default `.`).
//!
//! Timing is honest for asynchronous GPU work: kernels are timed with CUDA events on the
//! device's stream ([`GpuDevice::time_ms`]), and host-clock timings end only after the
//! stream has drained (every training step reads its loss back; the clock stops after a
//! final synchronise).
use arbor_cuda::ops::loss::{fused_loss_rows, ClassTerms, LossOutputs, LossScalars, RowTargets};
use arbor_cuda::{CudaSlice, GpuDevice};
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{batch_counts, Reduction, Target};
use arbor_engine::optim::Sgd;
use arbor_engine::{DType, Device, Tensor};
use arbor_models::loss::{Criterion, LossKind};
use arbor_models::resnet::{Arch, ResNet};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The loss benchmark's shape: a batch of 512 over 8142 classes (iNaturalist 2018).
const ROWS: usize = 512;
const CLASSES: usize = 8142;
const WARMUP: usize = 5;
const REPS: usize = 50;

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    if let Err(e) = run(&out) {
        eprintln!("gpu_bench: {e}");
        std::process::exit(1);
    }
}

fn run(out: &std::path::Path) -> BoxResult<()> {
    if let Err(why) = arbor_cuda::gpu_available() {
        return Err(format!("no GPU: {why}").into());
    }
    // The engine's own device, so the engine's work and the kernels share one stream.
    let dev = arbor_engine::cuda::device(0)?;
    let name = dev.name()?;
    println!("device: {name} ({})", dev.arch());
    let loss = bench_loss(&dev)?;
    let step = bench_resnet32_step(&dev)?;
    let report =
        json!({ "device": name, "arch": dev.arch(), "fused_loss": loss, "resnet32_step": step });
    std::fs::create_dir_all(out)?;
    let path = out.join("gpu_bench.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Average milliseconds of `REPS` runs of `work` after `WARMUP` untimed ones.
fn kernel_ms(dev: &GpuDevice, mut work: impl FnMut() -> arbor_cuda::Result<()>) -> BoxResult<f64> {
    for _ in 0..WARMUP {
        work()?;
    }
    let ((), ms) = dev.time_ms(|| (0..REPS).try_for_each(|_| work()))?;
    Ok(ms as f64 / REPS as f64)
}

/// The fused ARB-Loss forward+backward at (512, 8142) (reads the logits once, writes the
/// gradient once) against copying the logits' bytes device to device (the same traffic),
/// and the engine op around the kernel.
fn bench_loss(dev: &GpuDevice) -> BoxResult<Value> {
    let mut rng = SplitMix::new(1);
    let logits: Vec<f32> = rng
        .vec(ROWS * CLASSES, -5.0, 5.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let labels: Vec<usize> = (0..ROWS)
        .map(|_| rng.next_u64() as usize % CLASSES)
        .collect();
    let z = dev.upload(&logits)?;
    let bytes = (2 * ROWS * CLASSES * std::mem::size_of::<f32>()) as f64;

    let mut copy_dst = dev.alloc_zeros::<f32>(z.len())?;
    let copy_ms = kernel_ms(dev, || dev.copy(&z, &mut copy_dst))?;
    let kernel_ms = time_arb_kernel(dev, &z, &labels)?;
    let op_ms = time_arb_op(dev, logits, labels)?;

    let gbps = |ms: f64| bytes / (ms * 1e-3) / 1e9;
    println!("fused loss ({ROWS} x {CLASSES}, f32):");
    println!(
        "  device copy of the same bytes   {copy_ms:8.4} ms  {:7.1} GB/s",
        gbps(copy_ms)
    );
    println!(
        "  {:<32}{kernel_ms:8.4} ms  {:7.1} GB/s  {:.2} of copy bandwidth",
        "engine kernel (loss.cu)",
        gbps(kernel_ms),
        copy_ms / kernel_ms
    );
    println!("  engine op end to end (host clock) {op_ms:8.4} ms");
    Ok(json!({
        "rows": ROWS, "classes": CLASSES, "bytes_moved": bytes,
        "copy_ms": copy_ms, "copy_gbps": gbps(copy_ms),
        "engine_kernel_ms": kernel_ms, "engine_kernel_gbps": gbps(kernel_ms),
        "engine_kernel_bandwidth_ratio": copy_ms / kernel_ms,
        "engine_op_end_to_end_ms": op_ms,
    }))
}

/// Kernel milliseconds of the engine's loss kernel, launched as the engine launches it
/// for ARB-Loss with batch counts (offsets `log n_j`, clamp 30, the mean's `1/B`).
fn time_arb_kernel(dev: &GpuDevice, z: &CudaSlice<f32>, labels: &[usize]) -> BoxResult<f64> {
    let offsets: Vec<f32> = batch_counts(labels, CLASSES)
        .iter()
        .map(|&n| {
            if n > 0.0 {
                (n as f32).ln()
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let offsets = dev.upload(&offsets)?;
    let labels_i32: Vec<i32> = labels.iter().map(|&c| c as i32).collect();
    let labels_dev = dev.upload(&labels_i32)?;
    let coefs = dev.upload(&vec![1.0f32; ROWS])?;
    let (mut row_loss, mut grad) = (
        dev.alloc_zeros::<f32>(ROWS)?,
        dev.alloc_zeros::<f32>(z.len())?,
    );
    let mut first_bad: CudaSlice<u32> = dev.upload(&[u32::MAX])?;
    kernel_ms(dev, || {
        let targets = RowTargets::Labels {
            labels: &labels_dev,
            coefs: &coefs,
            per_row: 1,
        };
        let classes = ClassTerms {
            offsets: Some(&offsets),
            ..Default::default()
        };
        let scalars = LossScalars {
            scale: 1.0,
            clamp: Some(30.0),
            gamma: 0.0,
            smoothing: 0.0,
            grad_scale: 1.0 / ROWS as f32,
        };
        let out = LossOutputs {
            row_loss: &mut row_loss,
            grad: &mut grad,
            first_bad: &mut first_bad,
        };
        fused_loss_rows(dev, z, ROWS, CLASSES, targets, classes, scalars, out)
    })
}

/// Host-clock milliseconds of the engine op end to end: host validation, uploads of
/// labels and counts, the kernel, and the read-back of the non-finite check.
fn time_arb_op(dev: &GpuDevice, logits: Vec<f32>, labels: Vec<usize>) -> BoxResult<f64> {
    let criterion = Criterion::new(
        "arb".parse::<LossKind>()?,
        Reduction::Mean,
        &vec![1.0; CLASSES],
    )?;
    let zt = Tensor::from_vec(logits, [ROWS, CLASSES])?.to_device(Device::Cuda(0))?;
    let target = Target::Hard(labels);
    for _ in 0..WARMUP {
        criterion.loss(&zt, &target, 1)?;
    }
    let t0 = Instant::now();
    for _ in 0..REPS {
        criterion.loss(&zt, &target, 1)?;
    }
    dev.synchronize()?;
    Ok(t0.elapsed().as_secs_f64() * 1e3 / REPS as f64)
}

/// Images per second of full ResNet-32 training steps at batch 128 (upload, forward,
/// ARB-Loss with batch counts, backward, SGD, loss read back), as the trainer runs them.
fn bench_resnet32_step(dev: &GpuDevice) -> BoxResult<Value> {
    const BATCH: usize = 128;
    const STEPS: usize = 20;
    let device = Device::Cuda(0);
    let mut model = ResNet::new(Arch::ResNet32, 10, DType::F32, 0)?;
    model.to_device(device)?;
    let mut sgd = Sgd::new(model.parameters(), 0.1, 0.9, 2e-4)?;
    let counts: Vec<f64> = (0..10).map(|j| (5000 >> (j / 2)) as f64).collect();
    let criterion = Criterion::new("arb".parse::<LossKind>()?, Reduction::Mean, &counts)?;
    let mut rng = SplitMix::new(2);
    let images: Vec<f32> = rng
        .vec(BATCH * 3 * 32 * 32, -2.0, 2.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let labels: Vec<usize> = (0..BATCH).map(|i| i % 10).collect();
    let mut step = || -> BoxResult<f64> {
        let x = Tensor::from_vec(images.clone(), [BATCH, 3, 32, 32])?.to_device(device)?;
        let loss = criterion.loss(&model.forward(&x)?, &Target::Hard(labels.clone()), 1)?;
        sgd.zero_grad();
        loss.backward()?;
        sgd.step()?;
        Ok(loss.item()?)
    };
    for _ in 0..3 {
        step()?;
    }
    dev.synchronize()?;
    let t0 = Instant::now();
    let mut last_loss = 0.0;
    for _ in 0..STEPS {
        last_loss = step()?;
    }
    dev.synchronize()?;
    let seconds = t0.elapsed().as_secs_f64();
    let img_per_s = (BATCH * STEPS) as f64 / seconds;
    println!("resnet32 training step, batch {BATCH}: {:.1} ms/step, {img_per_s:.0} img/s (loss {last_loss:.3})", seconds * 1e3 / STEPS as f64);
    Ok(json!({
        "batch": BATCH, "steps": STEPS, "ms_per_step": seconds * 1e3 / STEPS as f64,
        "img_per_s": img_per_s, "last_loss": last_loss,
    }))
}
