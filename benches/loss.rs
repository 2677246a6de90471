//! ARB-Loss forward + backward: the fused op against the same loss composed from the
//! engine's primitives (autodiff through clamp, add, logsumexp, gather, sub, mean), and a
//! memcpy of the same bytes (logits read + gradient written), on one thread and on every
//! rayon thread, as the memory-bound floor; and the fused op on logits of which some lie
//! beyond the clamp. Also cross-entropy, Balanced Softmax and
//! mixup targets through the same fused kernel (`loss_fwd_bwd/...`).
//!
//! Run: `cargo bench --bench loss`. f32, global counts (every class present), hard labels.
//! Both sides get the class counts prepared once, as a training run does: the composed
//! form a `log n` tensor, the fused op a [`Criterion`] (the trainer's loss object).
mod common;
use arbor::engine::gradcheck::SplitMix;
use arbor::engine::ops::loss::{Reduction, Target};
use arbor::engine::{DType, Result, Tensor};
use arbor::models::loss::{CountMode, Criterion as Loss, LossKind};
use criterion::{black_box, criterion_group, Criterion, Throughput};
use std::time::Duration;

/// The PyTorch anchor's four sizes (`../shared/bench/torch_anchor.py`), so that every size
/// has a ratio against PyTorch from one run.
const SIZES: [(usize, usize); 4] = [(128, 10), (128, 100), (512, 1000), (512, 8142)];

/// The same loss from primitives: `mean_i( lse_j(z~_ij + log n_j) - (z~_iy + log n_y) )`.
fn composed(z: &Tensor, y: &[usize], log_n: &Tensor) -> Result<Tensor> {
    let b = z.dims()[0];
    let u = z.clamp(-30.0, 30.0)?.add(log_n)?;
    let target = u.gather(1, y, [b, 1])?.reshape([b])?;
    u.logsumexp(1, false)?.sub(&target)?.mean_all()
}

/// One size's inputs: f32 logits in [-6, 6] (a parameter, so backward reaches them), class
/// counts 1..500 and labels spread over every class.
struct Problem {
    z: Tensor,
    counts: Vec<f64>,
    y: Vec<usize>,
}

fn problem(b: usize, classes: usize, seed: u64) -> Problem {
    let mut r = SplitMix::new(seed);
    let z = Tensor::from_vec(r.vec(b * classes, -6.0, 6.0), [b, classes])
        .and_then(|t| t.to_dtype(DType::F32))
        .unwrap()
        .into_parameter();
    Problem {
        z,
        counts: (0..classes).map(|j| 1.0 + (j * 37 % 500) as f64).collect(),
        y: (0..b).map(|i| i * 7919 % classes).collect(),
    }
}

/// The loss benches' criterion settings: short runs, throughput in the bytes a
/// memory-bound pass moves (logits read, gradient written).
fn group<'a>(
    c: &'a mut Criterion,
    name: String,
    b: usize,
    classes: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let bytes = 2 * b * classes * std::mem::size_of::<f32>();
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Bytes(bytes as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

fn fwd_bwd(c: &mut Criterion) {
    for (b, classes) in SIZES {
        let Problem { z, counts, y } = problem(b, classes, 7);
        let log_n: Vec<f32> = counts.iter().map(|n| n.ln() as f32).collect();
        let log_n = Tensor::from_vec(log_n, [1, classes]).unwrap();
        let target = Target::Hard(y.clone());
        let arb = LossKind::Arb {
            counts: CountMode::Global,
            clamp: true,
        };
        let loss = Loss::new(arb, Reduction::Mean, &counts).unwrap();

        let mut group = group(c, format!("arb_loss_fwd_bwd/{b}x{classes}"), b, classes);
        group.bench_function("fused", |bench| {
            bench.iter(|| {
                z.zero_grad();
                loss.loss(&z, &target, 1).unwrap().backward().unwrap();
                black_box(z.grad())
            })
        });
        group.bench_function("composed", |bench| {
            bench.iter(|| {
                z.zero_grad();
                composed(&z, &y, &log_n).unwrap().backward().unwrap();
                black_box(z.grad())
            })
        });
        // Every 997th logit beyond the clamp (40 against 30): at C >= 1000 about one in
        // each block of 1024 classes of every row, as a network that fits its labels
        // gives; at C = 100 about one row in ten. At AVX2 each such block is scanned once
        // more for a non-finite logit (`sweeps.rs`, `sweep_shifted`); a fast path that
        // skips the clamp must not make this case slower.
        let mut outliers: Vec<f32> = z.to_vec().unwrap();
        for v in outliers.iter_mut().step_by(997) {
            *v = 40.0;
        }
        let outliers = Tensor::from_vec(outliers, [b, classes])
            .unwrap()
            .into_parameter();
        group.bench_function("fused_beyond_clamp", |bench| {
            bench.iter(|| {
                outliers.zero_grad();
                let l = loss.loss(&outliers, &target, 1).unwrap();
                l.backward().unwrap();
                black_box(outliers.grad())
            })
        });
        let src = vec![1.0f32; b * classes];
        let mut dst = vec![0.0f32; b * classes];
        group.bench_function("memcpy", |bench| {
            bench.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        // The floor issue 9 measures against: the same bytes copied on every rayon thread.
        group.bench_function("memcpy_rayon", |bench| {
            bench.iter(|| {
                use rayon::prelude::*;
                dst.par_chunks_mut(1 << 14)
                    .zip(black_box(&src).par_chunks(1 << 14))
                    .for_each(|(d, s)| d.copy_from_slice(s));
                black_box(&dst);
            })
        });
        group.finish();
    }
}

/// The fused kernel's other targets and losses at a small and the largest size:
/// cross-entropy and Balanced Softmax on hard labels, ARB-Loss on mixup targets.
fn other_losses(c: &mut Criterion) {
    for (b, classes) in [(128, 100), (512, 8142)] {
        let Problem { z, counts, y } = problem(b, classes, 11);
        let partner: Vec<usize> = y.iter().rev().copied().collect();
        let hard = Target::Hard(y.clone());
        let mixup = Target::Mixup {
            a: y,
            b: partner,
            lam: 0.7,
        };
        let mut group = group(c, format!("loss_fwd_bwd/{b}x{classes}"), b, classes);
        for (name, kind, target) in [
            ("ce", "ce", &hard),
            ("bsm", "bsm", &hard),
            ("arb_mixup", "arb", &mixup),
        ] {
            let loss =
                Loss::new(kind.parse::<LossKind>().unwrap(), Reduction::Mean, &counts).unwrap();
            group.bench_function(name, |bench| {
                bench.iter(|| {
                    z.zero_grad();
                    loss.loss(&z, target, 1).unwrap().backward().unwrap();
                    black_box(z.grad())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, fwd_bwd, other_losses);
fn main() {
    common::announce("loss");
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
