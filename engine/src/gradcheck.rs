//! Finite-difference gradient checking in f64, used by every op's tests (and by other
//! crates' tests, hence public).
//!
//! For `y = f(inputs)`, the scalar `L = sum(y * R)` with a fixed random `R` exercises every
//! output element. Autodiff's `dL/dx` is compared with the central difference
//! `(L(x + h) - L(x - h)) / 2h` for every element of every input.
use crate::error::{Error, Result};
use crate::{no_grad, DType, Tensor};

/// A small deterministic generator (SplitMix64), so the engine needs no `rand`.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    /// `n` uniform values in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Tolerances of a check: pass when `|a - n| <= atol + rtol * max(|a|, |n|)`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub step: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            step: 1e-6,
            atol: 1e-7,
            rtol: 1e-5,
        }
    }
}

/// Checks the gradients of `f` w.r.t. every tensor in `inputs` (f64 parameters).
pub fn check<F>(inputs: &[Tensor], f: F) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    check_with(inputs, f, Tolerance::default())
}

/// [`check`] for a function of one tensor.
pub fn check1<F>(input: &Tensor, f: F) -> Result<()>
where
    F: Fn(&Tensor) -> Result<Tensor>,
{
    check(std::slice::from_ref(input), |xs| f(&xs[0]))
}

pub fn check_with<F>(inputs: &[Tensor], f: F, tol: Tolerance) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    check_subset(inputs, f, tol, usize::MAX)
}

/// Like [`check_with`], comparing at most `per_input` evenly spaced elements of each input
/// (for models too large to difference every weight).
pub fn check_subset<F>(inputs: &[Tensor], f: F, tol: Tolerance, per_input: usize) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    for t in inputs {
        if t.dtype() != DType::F64 || !t.requires_grad() {
            return Err(Error::Invalid {
                op: "gradcheck",
                msg: format!("inputs must be f64 parameters, got {t:?}"),
            });
        }
        t.zero_grad();
    }
    let probe = no_grad(|| f(inputs))?;
    let mut rng = SplitMix::new(0x5eed);
    let weights = Tensor::from_vec(rng.vec(probe.numel(), -1.0, 1.0), probe.shape().clone())?;
    let objective = |xs: &[Tensor]| -> Result<Tensor> { f(xs)?.mul(&weights)?.sum_all() };

    objective(inputs)?.backward()?;
    for (which, t) in inputs.iter().enumerate() {
        let analytic = match t.grad() {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; t.numel()],
        };
        let stride = analytic.len().div_ceil(per_input.max(1)).max(1);
        for (i, &a) in analytic.iter().enumerate().step_by(stride) {
            let numeric = no_grad(|| -> Result<f64> {
                let original = nudge(t, i, None)?;
                nudge(t, i, Some(original + tol.step))?;
                let up = objective(inputs)?.item()?;
                nudge(t, i, Some(original - tol.step))?;
                let down = objective(inputs)?.item()?;
                nudge(t, i, Some(original))?;
                Ok((up - down) / (2.0 * tol.step))
            })?;
            if (a - numeric).abs() > tol.atol + tol.rtol * a.abs().max(numeric.abs()) {
                return Err(Error::Invalid {
                    op: "gradcheck",
                    msg: format!("input {which} {:?} element {i}: autodiff {a:e}, finite difference {numeric:e}", t.shape()),
                });
            }
        }
    }
    Ok(())
}

/// Returns element `i` of `t`, after setting it to `value` when one is given.
fn nudge(t: &Tensor, i: usize, value: Option<f64>) -> Result<f64> {
    let mut s = t.storage_mut();
    let cpu = match &mut *s {
        crate::Storage::Cpu(c) => c,
        other => {
            return Err(Error::Device {
                op: "gradcheck",
                msg: format!("needs a CPU tensor, got {}", other.device()),
            })
        }
    };
    let v = cpu.as_mut_slice::<f64>().ok_or_else(|| Error::DType {
        op: "gradcheck",
        msg: "needs f64".into(),
    })?;
    let old = v[i];
    if let Some(value) = value {
        v[i] = value;
    }
    Ok(old)
}

/// An f64 parameter of `shape` with values uniform in `[lo, hi)`.
pub fn param(rng: &mut SplitMix, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rng.vec(n, lo, hi), shape.to_vec())
        .expect("length matches shape")
        .into_parameter()
}
