//! Writing a new op: softplus, `y = log(1 + e^x)`, whose gradient is
//! `dx = dy · sigmoid(x)`. The op is recorded on the tape like any built-in one, then its
//! backward rule is checked against finite differences in f64, and a deliberately wrong
//! rule is shown failing the same check.
//!
//! Teaches: the `Backward` trait (one method: input gradients from the output's),
//! `Tensor::custom_op` (puts a node on the tape), `gradcheck::check1`, `tape::describe`.
//! Read next: `engine/src/tape.rs` (`Backward`, the reverse loop), `engine/src/tensor.rs`
//! (`custom_op` and `from_op`, the door the engine's own ops use),
//! `engine/src/ops/elementwise.rs` (the built-in unary ops written the same way),
//! `engine/src/gradcheck.rs` (what the check compares).
//!
//! Run: `cargo run --release --example custom_op`
use arbor::engine::gradcheck::{self, SplitMix};
use arbor::engine::{tape, Backward, Result, Tensor};

/// Softplus's gradient rule. It reads the input's values, so it keeps the default
/// `needs_input_values() == true` and the tape holds on to `x` until the backward pass.
#[derive(Debug)]
struct SoftplusBackward;

impl Backward for SoftplusBackward {
    fn backward(&self, grad_out: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        // Backward rules run with recording off, so these ops add nothing to the tape.
        let sigmoid = inputs[0].neg()?.exp()?.add_scalar(1.0)?.powf(-1.0)?;
        Ok(vec![Some(grad_out.mul(&sigmoid)?)])
    }
}

/// A plausible mistake: `sigmoid'(x) = e^-x / (1 + e^-x)^2`, the derivative one step too far.
#[derive(Debug)]
struct WrongSoftplusBackward;

impl Backward for WrongSoftplusBackward {
    fn backward(&self, grad_out: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let e = inputs[0].neg()?.exp()?;
        let wrong = e.div(&e.add_scalar(1.0)?.powf(2.0)?)?;
        Ok(vec![Some(grad_out.mul(&wrong)?)])
    }
}

/// Softplus with the given gradient rule. The forward runs on the host, in the stable form
/// `max(x, 0) + log(1 + e^-|x|)` (no overflow for large `x`).
fn softplus_with(x: &Tensor, rule: impl Backward + 'static) -> Result<Tensor> {
    let y: Vec<f64> = x
        .to_vec_f64()?
        .iter()
        .map(|&v| v.max(0.0) + (-v.abs()).exp().ln_1p())
        .collect();
    let value = Tensor::from_vec(y, x.shape().clone())?
        .to_dtype(x.dtype())?
        .to_device(x.device())?;
    Ok(Tensor::custom_op(&value, &[x], rule))
}

fn softplus(x: &Tensor) -> Result<Tensor> {
    softplus_with(x, SoftplusBackward)
}

fn main() -> Result<()> {
    // 1. Forward and backward on three values.
    let x = Tensor::parameter(vec![-2.0f64, 0.0, 3.0], [3])?;
    let loss = softplus(&x)?.sum_all()?;
    println!(
        "the tape before backward (softplus, then sum):\n{}",
        tape::describe()
    );
    loss.backward()?;
    println!("x           = {:?}", x.to_vec::<f64>()?);
    println!(
        "softplus(x) = {:?}",
        softplus(&x.detach())?.to_vec::<f64>()?
    );
    let grad = x
        .grad()
        .expect("x contributed to the loss")
        .to_vec::<f64>()?;
    println!("d sum / dx  = {grad:?}  (sigmoid(x): 0.1192, 0.5, 0.9526)");

    // 2. The rule against central differences, in f64, on random inputs inside a
    //    composition (so the upstream gradient is not all ones).
    let mut rng = SplitMix::new(14);
    let a = gradcheck::param(&mut rng, &[4, 3], -3.0, 3.0);
    let w = gradcheck::param(&mut rng, &[3, 2], -1.0, 1.0);
    gradcheck::check(&[a.clone(), w.clone()], |t| softplus(&t[0].matmul(&t[1])?))?;
    println!("gradcheck: softplus(a w) matches finite differences for a [4,3] and w [3,2]");

    // 3. The check fails, and says where, when the rule is wrong.
    match gradcheck::check1(&a, |t| softplus_with(t, WrongSoftplusBackward)) {
        Ok(()) => println!("gradcheck: the wrong rule passed (it should not)"),
        Err(e) => println!("gradcheck on the wrong rule fails as it should:\n  {e}"),
    }
    Ok(())
}
