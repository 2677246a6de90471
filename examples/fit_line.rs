//! Fitting a line: recovers `y = 3x - 2` from 64 noisy points by gradient descent on the
//! mean squared error, with the SGD step written out by hand.
//!
//! Teaches: parameters (`into_parameter`), a forward pass of broadcasting ops, `backward()`,
//! reading `grad()`, updating values in place under `no_grad`.
//! Read next: `engine/src/tensor.rs` (parameters, `backward`, `grad`; `assign` is in
//! `tensor/values.rs`), `engine/src/tape.rs` (the reverse loop),
//! `engine/src/ops/elementwise.rs` (the ops used here, each with its backward rule beside
//! it).
//!
//! Run: `cargo run --release --example fit_line`
use arbor::engine::{no_grad, Result, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const POINTS: usize = 64;
const STEPS: usize = 200;
const LR: f64 = 0.1;

fn main() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let noise = Normal::new(0.0, 0.1).expect("valid std");
    let xs: Vec<f64> = (0..POINTS).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|x| 3.0 * x - 2.0 + noise.sample(&mut rng))
        .collect();
    let x = Tensor::from_vec(xs, [POINTS])?;
    let y = Tensor::from_vec(ys, [POINTS])?;

    // Parameters are leaves that record gradients; `[1]` broadcasts against `[POINTS]`.
    let w = Tensor::parameter(vec![0.0f64], [1])?;
    let b = Tensor::parameter(vec![0.0f64], [1])?;

    for step in 0..=STEPS {
        let prediction = x.mul(&w)?.add(&b)?;
        let loss = prediction.sub(&y)?.powf(2.0)?.mean_all()?;
        if step % 25 == 0 {
            println!(
                "step {step:3}  loss {:.5}  w {:+.4}  b {:+.4}",
                loss.item()?,
                w.item()?,
                b.item()?
            );
        }
        // Fills w.grad() and b.grad() with d loss / d w and d loss / d b, and empties the tape.
        loss.backward()?;
        // The update itself must not be recorded: it is not part of the function being
        // differentiated.
        no_grad(|| -> Result<()> {
            for p in [&w, &b] {
                let g = p.grad().expect("the loss depends on every parameter");
                p.assign(&p.sub(&g.scale(LR)?)?)?;
                // Gradients accumulate across backward passes until cleared.
                p.zero_grad();
            }
            Ok(())
        })?;
    }
    println!(
        "fitted y = {:.3} x {:+.3}  (data drawn from y = 3 x - 2 plus noise of std 0.1)",
        w.item()?,
        b.item()?
    );
    Ok(())
}
