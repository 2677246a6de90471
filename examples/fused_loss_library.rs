//! The fused ARB-Loss as a library in someone else's training loop. The model here is not
//! the engine's: a softmax regression in plain `Vec<f32>`s with its own forward, its own
//! backward and its own SGD. Only the loss comes from the engine: the loop hands it the
//! logits, gets back the loss and `dL/dlogits`, and carries on by hand.
//!
//! The data: four 3-D Gaussian blobs with 600, 200, 60 and 20 training points, minibatches
//! of 64, and ARB-Loss with each batch's own class counts (the paper's default).
//!
//! Teaches: the logits as a tensor the loss can differentiate (`Tensor::parameter`),
//! `arb_loss` with `batch_counts`, reading `dL/dz` back with `grad()`.
//! Read next: `engine/src/ops/loss/arb.rs` (the formula and its gradient
//! `(p - onehot) / B`), `engine/src/ops/loss/counts.rs` (`batch_counts`),
//! `engine/src/ops/loss/mod.rs` (`FusedLoss` and its backward, which only rescales the
//! gradient the forward pass already wrote).
//!
//! Run: `cargo run --release --example fused_loss_library`
use arbor::engine::ops::loss::{arb_loss, batch_counts, ArbOptions, Target};
use arbor::engine::{Result, Tensor};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

const DIM: usize = 3;
const CLASSES: usize = 4;
const TRAIN_COUNTS: [usize; CLASSES] = [600, 200, 60, 20];
const BATCH: usize = 64;
const EPOCHS: usize = 15;
const LR: f32 = 0.5;

/// The caller's model: `logits = W x + b`, `W: [CLASSES, DIM]`, row-major.
struct SoftmaxRegression {
    w: Vec<f32>,
    b: Vec<f32>,
}

impl SoftmaxRegression {
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        x.chunks(DIM)
            .flat_map(|xi| {
                (0..CLASSES).map(move |c| {
                    let row = &self.w[c * DIM..(c + 1) * DIM];
                    self.b[c] + row.iter().zip(xi).map(|(w, x)| w * x).sum::<f32>()
                })
            })
            .collect()
    }

    /// The chain rule by hand: `dW = dz^T x`, `db = sum_i dz_i`, then one SGD step.
    fn sgd_step(&mut self, x: &[f32], dz: &[f32]) {
        for (xi, dzi) in x.chunks(DIM).zip(dz.chunks(CLASSES)) {
            let rows = self.w.chunks_mut(DIM).zip(&mut self.b);
            for ((w_row, b), &g) in rows.zip(dzi) {
                *b -= LR * g;
                for (w, &x) in w_row.iter_mut().zip(xi) {
                    *w -= LR * g * x;
                }
            }
        }
    }

    fn predict(&self, x: &[f32]) -> Vec<usize> {
        self.logits(x)
            .chunks(CLASSES)
            .map(|row| {
                (0..CLASSES)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// `(point, label)` pairs: class `k` centred at 1.5 on axis `k % DIM` (negated for
/// `k >= DIM`), unit variance.
fn blobs(rng: &mut StdRng, counts: &[usize]) -> Vec<([f32; DIM], usize)> {
    let unit = Normal::new(0.0f32, 1.0).expect("valid std");
    let mut points = vec![];
    for (k, &n) in counts.iter().enumerate() {
        let mut centre = [0.0; DIM];
        centre[k % DIM] = if k < DIM { 1.5 } else { -1.5 };
        for _ in 0..n {
            points.push((centre.map(|c| c + unit.sample(rng)), k));
        }
    }
    points
}

/// One minibatch through the engine's loss: returns the batch's mean ARB-Loss and
/// `dL/dlogits` (`[B, CLASSES]`, already including the mean's `1/B`).
fn arb_loss_and_grad(logits: Vec<f32>, labels: &[usize]) -> Result<(f64, Vec<f32>)> {
    // A parameter, so the loss records the op and `backward` fills its gradient.
    let z = Tensor::parameter(logits, [labels.len(), CLASSES])?;
    let counts = batch_counts(labels, CLASSES);
    let loss = arb_loss(
        &z,
        &Target::Hard(labels.to_vec()),
        &counts,
        &ArbOptions::default(),
    )?;
    loss.backward()?;
    let grad = z.grad().expect("the loss depends on every logit");
    Ok((loss.item()?, grad.to_vec::<f32>()?))
}

fn main() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut train = blobs(&mut rng, &TRAIN_COUNTS);
    let test = blobs(&mut rng, &[500; CLASSES]);
    let mut model = SoftmaxRegression {
        w: vec![0.0; CLASSES * DIM],
        b: vec![0.0; CLASSES],
    };

    for epoch in 1..=EPOCHS {
        train.shuffle(&mut rng);
        let mut total = 0.0;
        for batch in train.chunks(BATCH) {
            let x: Vec<f32> = batch.iter().flat_map(|(p, _)| *p).collect();
            let labels: Vec<usize> = batch.iter().map(|(_, y)| *y).collect();
            let (loss, dz) = arb_loss_and_grad(model.logits(&x), &labels)?;
            model.sgd_step(&x, &dz);
            total += loss * batch.len() as f64;
        }
        if epoch % 3 == 0 || epoch == 1 {
            println!(
                "epoch {epoch:2}  mean ARB-Loss {:.4}",
                total / train.len() as f64
            );
        }
    }

    let x: Vec<f32> = test.iter().flat_map(|(p, _)| *p).collect();
    let mut right = [0usize; CLASSES];
    for (predicted, (_, label)) in model.predict(&x).into_iter().zip(&test) {
        right[*label] += usize::from(predicted == *label);
    }
    println!("test accuracy per class (500 points each, trained on {TRAIN_COUNTS:?}):");
    for (k, r) in right.iter().enumerate() {
        println!("  class {k}: {:.1}%", 100.0 * *r as f64 / 500.0);
    }
    Ok(())
}
