//! One ResNet-32 training step (forward, fused ARB-Loss, backward, SGD) at batch 128 on
//! CIFAR-shaped input, the step `../shared/bench/torch_anchor.py` times in PyTorch.
//! Throughput is declared in images, so criterion prints images/s.
//!
//! Also the evaluation forward (no grad), `resnet32_eval/batch128` (batch norm folded
//! into the convs) beside `resnet32_eval/batch128_unfolded` (the composed ops).
//!
//! Run: `RAYON_NUM_THREADS=2 cargo bench --bench train_step`
mod common;
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::ops::loss::{Reduction, Target};
use arbor_engine::optim::Sgd;
use arbor_engine::{DType, Tensor};
use arbor_models::loss::{Criterion, LossKind};
use arbor_models::resnet::{Arch, ResNet};
use criterion::{criterion_group, Criterion as Bench, Throughput};
use std::time::Duration;

const BATCH: usize = 128;

// As in `repro`: an allocator that keeps freed activation buffers for reuse instead of
// returning them to the OS (which costs a page fault per 4 KiB on every step).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn train_step(c: &mut Bench) {
    arbor::alloc::keep_freed_memory();
    let mut model = ResNet::new(Arch::ResNet32, 10, DType::F32, 0).unwrap();
    let mut sgd = Sgd::new(model.parameters(), 0.1, 0.9, 2e-4).unwrap();
    // CIFAR-10-LT IF100 counts, as the PyTorch anchor uses.
    let counts: Vec<f64> = (0..10)
        .map(|i| (5000.0 * 0.01f64.powf(i as f64 / 9.0)).floor())
        .collect();
    let loss =
        Criterion::new("arb".parse::<LossKind>().unwrap(), Reduction::Mean, &counts).unwrap();
    let mut rng = SplitMix::new(1);
    let x = Tensor::from_vec(
        rng.vec(BATCH * 3 * 32 * 32, -1.0, 1.0)
            .into_iter()
            .map(|v| v as f32)
            .collect::<Vec<_>>(),
        [BATCH, 3, 32, 32],
    )
    .unwrap();
    let labels: Vec<usize> = (0..BATCH).map(|_| (rng.next_u64() % 10) as usize).collect();
    let target = Target::Hard(labels);

    let mut group = c.benchmark_group("resnet32_train_step");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(3));
    group.bench_function("batch128", |b| {
        b.iter(|| {
            let l = loss.loss(&model.forward(&x).unwrap(), &target, 1).unwrap();
            sgd.zero_grad();
            l.backward().unwrap();
            sgd.step().unwrap();
        })
    });
    group.finish();

    // Evaluation: the no-grad forward `repro` runs on the test set, batch-norm in
    // evaluation mode.
    model.set_training(false);
    let mut group = c.benchmark_group("resnet32_eval");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(2));
    group.bench_function("batch128", |b| {
        b.iter(|| arbor_engine::no_grad(|| model.forward(&x).unwrap()))
    });
    // The same forward with batch norm not folded into the convs (conv, then batch norm
    // and ReLU as ops of their own): what folding saves, measured beside it.
    arbor_models::layers::fold_batch_norm_in_evaluation(false);
    group.bench_function("batch128_unfolded", |b| {
        b.iter(|| arbor_engine::no_grad(|| model.forward(&x).unwrap()))
    });
    arbor_models::layers::fold_batch_norm_in_evaluation(true);
    group.finish();
}

criterion_group!(benches, train_step);
fn main() {
    common::announce("train_step");
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
