//! An MLP on a toy 2-D dataset: two interleaved half-moons, which no straight line
//! separates, learned by a 2-32-32-2 ReLU network with cross-entropy and SGD with
//! momentum. Prints the loss and accuracy as they improve, then the learned decision
//! regions as a character map.
//!
//! Teaches: `linear` and `relu` layers, the fused cross-entropy (`FusedLoss` with hard
//! targets), the engine's `Sgd` optimiser, evaluation under `no_grad`.
//! Read next: `engine/src/ops/nn.rs` (`linear` built from `matmul` and a broadcast add),
//! `engine/src/ops/matmul.rs`, `engine/src/ops/loss/mod.rs` (the fused loss),
//! `engine/src/optim/sgd.rs`, then `engine/src/cpu/` for the loops underneath.
//!
//! Run: `cargo run --release --example mlp_2d`
use arbor::engine::ops::loss::{FusedLoss, Reduction, Target};
use arbor::engine::optim::Sgd;
use arbor::engine::{no_grad, Result, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const PER_MOON: usize = 200;
const HIDDEN: usize = 32;
const STEPS: usize = 600;

/// Points on two half circles, the second shifted to interleave with the first, with
/// Gaussian noise; label = which moon.
fn two_moons(rng: &mut StdRng) -> (Vec<f32>, Vec<usize>) {
    let noise = Normal::new(0.0, 0.12).expect("valid std");
    let (mut xy, mut labels) = (vec![], vec![]);
    for label in 0..2 {
        for _ in 0..PER_MOON {
            let t = rng.gen_range(0.0..std::f32::consts::PI);
            let (x, y) = match label {
                0 => (t.cos(), t.sin()),
                _ => (1.0 - t.cos(), 0.5 - t.sin()),
            };
            xy.push(x + noise.sample(rng));
            xy.push(y + noise.sample(rng));
            labels.push(label);
        }
    }
    (xy, labels)
}

/// A `[out, in]` weight, uniform in `±sqrt(6 / in)` (He initialisation, for ReLU layers).
fn layer(rng: &mut StdRng, out: usize, inp: usize) -> Result<(Tensor, Tensor)> {
    let bound = (6.0 / inp as f32).sqrt();
    let w = (0..out * inp)
        .map(|_| rng.gen_range(-bound..bound))
        .collect();
    Ok((
        Tensor::parameter(w, [out, inp])?,
        Tensor::parameter(vec![0.0f32; out], [out])?,
    ))
}

struct Mlp {
    layers: Vec<(Tensor, Tensor)>,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.linear(w, Some(b))?;
            if i + 1 < self.layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }

    /// The predicted class of each row of `x` (`[n, 2]`).
    fn predict(&self, x: &Tensor) -> Result<Vec<usize>> {
        let logits = no_grad(|| self.forward(x))?.to_vec::<f32>()?;
        Ok(logits
            .chunks(2)
            .map(|row| usize::from(row[1] > row[0]))
            .collect())
    }
}

fn accuracy(predicted: &[usize], labels: &[usize]) -> f64 {
    let right = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    100.0 * right as f64 / labels.len() as f64
}

fn main() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(2);
    let (xy, labels) = two_moons(&mut rng);
    let x = Tensor::from_vec(xy, [labels.len(), 2])?;
    let target = Target::Hard(labels.clone());
    let model = Mlp {
        layers: vec![
            layer(&mut rng, HIDDEN, 2)?,
            layer(&mut rng, HIDDEN, HIDDEN)?,
            layer(&mut rng, 2, HIDDEN)?,
        ],
    };
    let cross_entropy = FusedLoss::cross_entropy("cross_entropy", Reduction::Mean);
    let mut sgd = Sgd::new(model.parameters(), 0.1, 0.9, 0.0)?;

    // Full-batch steps: 400 points are one small batch.
    for step in 0..=STEPS {
        let loss = model.forward(&x)?.fused_loss(&cross_entropy, &target)?;
        if step % 100 == 0 {
            let acc = accuracy(&model.predict(&x)?, &labels);
            println!(
                "step {step:3}  loss {:.4}  accuracy {acc:5.1}%",
                loss.item()?
            );
        }
        sgd.zero_grad();
        loss.backward()?;
        sgd.step()?;
    }

    // The decision regions on a grid over the data's range: `o` moon 0, `x` moon 1.
    let (cols, rows) = (60, 20);
    let grid: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let y = 1.5 - 2.5 * r as f32 / (rows - 1) as f32;
            (0..cols).flat_map(move |c| [-1.5 + 4.0 * c as f32 / (cols - 1) as f32, y])
        })
        .collect();
    let regions = model.predict(&Tensor::from_vec(grid, [rows * cols, 2])?)?;
    println!("decision regions over x in [-1.5, 2.5], y in [-1, 1.5]:");
    for line in regions.chunks(cols) {
        println!(
            "  {}",
            line.iter().map(|&k| ["o", "x"][k]).collect::<String>()
        );
    }
    Ok(())
}
