//! Engine throughput: `cargo bench --bench engine`.
//!
//! Compute-bound benches declare `Throughput::Elements(flops)`, so the "elem/s" criterion
//! prints *is* FLOP/s (a multiply-add counts as 2):
//! - `sgemm/n`: `2 n^3` for an `n x n` product (the engine's `matmul`, f32);
//! - `conv2d/<shape>/fwd`: `2 N c_out h_out w_out c_in kh kw`; `fwd_bwd` counts 3x that
//!   (the input and weight gradients are each a GEMM of the forward's size).
//!
//! Memory-bound benches declare `Throughput::Bytes` of the bytes they must read and write
//! (each value once), next to memcpys of the same shape: `memcpy` (one thread, allocating
//! its output as an op does) and `memcpy_rayon` (every rayon thread, into an existing
//! buffer), so their bandwidth can be read against the machine's.
//!
//! On a shared machine the figures move with the neighbours' load: compare benches of
//! one run, and rerun when `sgemm/1024` looks low.
//!
//! Conv shapes are ResNet-32's on CIFAR-10, batch 128: the three stages' 3x3 convs and the
//! two stride-2 transitions. All runs are f32 with the tape off for forward-only benches.
mod common;
use arbor::engine::{no_grad, DType, Tensor};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 128;

/// Uniform values in `[-1, 1)` from a fixed seed, as an f32 tensor.
fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut r = arbor::engine::gradcheck::SplitMix::new(seed);
    let n = shape.iter().product();
    Tensor::from_vec(r.vec(n, -1.0, 1.0), shape.to_vec())
        .and_then(|t| t.to_dtype(DType::F32))
        .expect("shape matches length")
}

fn sgemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("sgemm");
    for n in [512usize, 1024] {
        let (a, b) = (random(&[n, n], 1), random(&[n, n], 2));
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |bch| {
            bch.iter(|| no_grad(|| black_box(a.matmul(&b).unwrap())))
        });
    }
    g.finish();
}

/// One conv layer: input channels, input size, output channels, stride.
struct ConvShape {
    c_in: usize,
    size: usize,
    c_out: usize,
    stride: usize,
}

impl ConvShape {
    /// The layer's 3x3, pad-1 geometry at the benches' batch.
    fn params(&self) -> arbor::engine::backend::Conv2dParams {
        arbor::engine::backend::Conv2dParams {
            batch: BATCH,
            c_in: self.c_in,
            h_in: self.size,
            w_in: self.size,
            c_out: self.c_out,
            kh: 3,
            kw: 3,
            stride: (self.stride, self.stride),
            padding: (1, 1),
        }
    }
}

const RESNET32_CONVS: [ConvShape; 5] = [
    ConvShape {
        c_in: 16,
        size: 32,
        c_out: 16,
        stride: 1,
    },
    ConvShape {
        c_in: 32,
        size: 16,
        c_out: 32,
        stride: 1,
    },
    ConvShape {
        c_in: 64,
        size: 8,
        c_out: 64,
        stride: 1,
    },
    ConvShape {
        c_in: 16,
        size: 32,
        c_out: 32,
        stride: 2,
    },
    ConvShape {
        c_in: 32,
        size: 16,
        c_out: 64,
        stride: 2,
    },
];

fn conv2d(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv2d");
    for s in &RESNET32_CONVS {
        let name = format!(
            "{}x{}x{}->{}_s{}",
            s.c_in, s.size, s.size, s.c_out, s.stride
        );
        let x = random(&[BATCH, s.c_in, s.size, s.size], 3).into_parameter();
        let w = random(&[s.c_out, s.c_in, 3, 3], 4).into_parameter();
        let out = s.size / s.stride;
        let dy = random(&[BATCH, s.c_out, out, out], 5);
        let flops = 2 * (BATCH * s.c_out * out * out * s.c_in * 9) as u64;
        let conv = || x.conv2d(&w, None, (s.stride, s.stride), (1, 1)).unwrap();

        g.throughput(Throughput::Elements(flops));
        g.bench_function(BenchmarkId::new("fwd", &name), |b| {
            b.iter(|| no_grad(|| black_box(conv())))
        });
        g.throughput(Throughput::Elements(3 * flops));
        g.bench_function(BenchmarkId::new("fwd_bwd", &name), |b| {
            b.iter(|| {
                conv().backward_with(&dy).unwrap();
                x.zero_grad();
                w.zero_grad();
            })
        });
    }
    g.finish();
}

/// The conv kernels alone (no tape), fwd+bwd, at every SIMD level this CPU has and on the
/// im2col + GEMM path, side by side: `conv_kernels/<shape>/<pass>-<level>` (`fwd_bwd` all three). A pass the direct
/// kernel of a level declines runs im2col, as the op would.
fn conv_kernels(c: &mut Criterion) {
    use arbor::engine::cpu::conv::{direct_kernels, im2col_kernels};
    use arbor::engine::cpu::simd::Level;
    let mut g = c.benchmark_group("conv_kernels");
    let mut r = arbor::engine::gradcheck::SplitMix::new(7);
    let mut values =
        |n: usize| -> Vec<f32> { r.vec(n, -1.0, 1.0).iter().map(|&v| v as f32).collect() };
    for s in &RESNET32_CONVS {
        let p = s.params();
        let out = s.size / s.stride;
        let x = values(BATCH * s.c_in * s.size * s.size);
        let w = values(s.c_out * s.c_in * 9);
        let dy = values(BATCH * s.c_out * out * out);
        let flops = 2 * (BATCH * s.c_out * out * out * s.c_in * 9) as u64;
        let name = format!(
            "{}x{}x{}->{}_s{}",
            s.c_in, s.size, s.size, s.c_out, s.stride
        );
        let im2col = im2col_kernels();
        let mut variants: Vec<(String, _)> = Level::supported()
            .into_iter()
            .map(|l| (l.name().to_string(), direct_kernels(l)))
            .collect();
        variants.push(("im2col".to_string(), im2col));
        for (variant, k) in variants {
            let run = |pass: usize, a: &[f32], b: &[f32]| {
                k[pass](a, b, &p).unwrap_or_else(|| im2col[pass](a, b, &p).expect("im2col"))
            };
            g.throughput(Throughput::Elements(3 * flops));
            g.bench_function(
                BenchmarkId::new(&name, format!("fwd_bwd-{variant}")),
                |bch| {
                    bch.iter(|| {
                        black_box(run(0, &x, &w));
                        black_box(run(1, &dy, &w));
                        black_box(run(2, &dy, &x));
                    })
                },
            );
            // Each pass alone, to see which one a level's direct kernel wins or loses.
            g.throughput(Throughput::Elements(flops));
            let passes: [(&str, &[f32], &[f32]); 3] =
                [("fwd", &x, &w), ("dx", &dy, &w), ("dw", &dy, &x)];
            for (pass, (pass_name, a, b)) in passes.into_iter().enumerate() {
                g.bench_function(
                    BenchmarkId::new(&name, format!("{pass_name}-{variant}")),
                    |bch| bch.iter(|| black_box(run(pass, a, b))),
                );
            }
        }
    }
    g.finish();
}

/// Winograd F(2x2, 3x3) and F(4x4, 3x3) beside the direct kernels and im2col on ResNet-32's stride-1
/// convs, forward, input grad and weight grad, with both kernels of every SIMD level this
/// CPU has in one run: `winograd_vs_direct/<shape>/<pass>-<kernel>-<level>`. Throughput
/// counts the direct convolution's FLOPs for all of them, so the rates compare times.
fn winograd_vs_direct(c: &mut Criterion) {
    use arbor::engine::cpu::conv::{
        direct_kernels, im2col_kernels, winograd4_kernels, winograd_kernels,
    };
    use arbor::engine::cpu::simd::Level;
    let mut g = c.benchmark_group("winograd_vs_direct");
    let mut r = arbor::engine::gradcheck::SplitMix::new(8);
    let mut values =
        |n: usize| -> Vec<f32> { r.vec(n, -1.0, 1.0).iter().map(|&v| v as f32).collect() };
    for s in RESNET32_CONVS.iter().filter(|s| s.stride == 1) {
        let p = s.params();
        let x = values(BATCH * s.c_in * s.size * s.size);
        let w = values(s.c_out * s.c_in * 9);
        let dy = values(BATCH * s.c_out * s.size * s.size);
        g.throughput(Throughput::Elements(p.forward_flops()));
        let name = format!("{}x{}", s.c_in, s.size);
        let mut variants = vec![("im2col".to_string(), im2col_kernels())];
        for l in Level::supported() {
            // The portable level's forward and input grad lose to im2col (see
            // `uses_winograd`); its weight grad is measured beside them.
            if l != Level::Portable {
                variants.push((format!("direct-{l}"), direct_kernels(l)));
            }
            variants.push((format!("winograd-{l}"), winograd_kernels(l)));
            variants.push((format!("winograd4-{l}"), winograd4_kernels(l)));
        }
        for (variant, kernels) in &variants {
            let passes: [(&str, &[f32], &[f32]); 3] =
                [("fwd", &x, &w), ("dx", &dy, &w), ("dw", &dy, &x)];
            for (kernel, (pass, a, b)) in kernels.iter().zip(passes) {
                if variant.ends_with("portable") && pass != "dw" {
                    continue;
                }
                g.bench_function(
                    BenchmarkId::new(&name, format!("{pass}-{variant}")),
                    |bch| bch.iter(|| black_box(kernel(a, b, &p).expect("takes the shape"))),
                );
            }
        }
    }
    g.finish();
}

/// Batch norm, relu and add on the largest ResNet-32 activation, beside memcpy.
fn memory_bound(c: &mut Criterion) {
    let shape = [BATCH, 16, 32, 32];
    let n: usize = shape.iter().product();
    let bytes = |values_moved: usize| Throughput::Bytes((values_moved * n * 4) as u64);
    let mut g = c.benchmark_group("memory_bound");
    let x = random(&shape, 6);
    let y = random(&shape, 7);

    // memcpy: read n values, write n values. `memcpy` allocates its output as every op
    // does (one thread); `memcpy_rayon` copies into an existing buffer on every rayon
    // thread, the most this machine's memory gives.
    let src = x.to_vec::<f32>().unwrap();
    let mut dst = vec![0.0f32; n];
    g.throughput(bytes(2));
    g.bench_function("memcpy", |b| b.iter(|| black_box(src.to_vec())));
    g.bench_function("memcpy_rayon", |b| {
        b.iter(|| {
            use rayon::prelude::*;
            dst.par_chunks_mut(1 << 16)
                .zip(src.par_chunks(1 << 16))
                .for_each(|(d, s)| d.copy_from_slice(s));
            black_box(&dst);
        })
    });
    g.bench_function("relu", |b| {
        b.iter(|| no_grad(|| black_box(x.relu().unwrap())))
    });
    g.throughput(bytes(3));
    g.bench_function("add", |b| {
        b.iter(|| no_grad(|| black_box(x.add(&y).unwrap())))
    });

    let c16 = |v: f64| Tensor::full([16], v, DType::F32);
    let (gamma, beta) = (c16(1.0).into_parameter(), c16(0.0).into_parameter());
    let (rm, rv) = (c16(0.0), c16(1.0));
    let xp = x.clone().into_parameter();
    let bn = || {
        xp.batch_norm2d(&gamma, &beta, &rm, &rv, true, 0.1, 1e-5)
            .unwrap()
    };
    // Forward: read x, write y. Backward: read dy and x, write dx.
    g.throughput(bytes(2));
    g.bench_function("batch_norm2d_fwd", |b| {
        b.iter(|| no_grad(|| black_box(bn())))
    });
    g.throughput(bytes(5));
    g.bench_function("batch_norm2d_fwd_bwd", |b| {
        b.iter(|| {
            bn().backward_with(&y).unwrap();
            for t in [&xp, &gamma, &beta] {
                t.zero_grad();
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = sgemm, conv2d, conv_kernels, winograd_vs_direct, memory_bound
}

fn main() {
    common::announce("engine");
    benches();
    Criterion::default().configure_from_args().final_summary();
}
