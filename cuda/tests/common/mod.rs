//! Shared by the GPU tests: getting a device (or skipping with a printed reason), a small
//! deterministic random source, and tolerance checks.
#![allow(dead_code)] // each test binary uses a different subset

pub mod window;

use arbor_cuda::{gpu_available, GpuDevice};

/// The first GPU, or None after printing why the calling test is skipped. With a GPU
/// present, failing to open it is a test failure, not a skip.
pub fn gpu(test: &str) -> Option<GpuDevice> {
    if let Err(reason) = gpu_available() {
        eprintln!("SKIPPED {test}: {reason}");
        return None;
    }
    Some(
        GpuDevice::new(0)
            .unwrap_or_else(|e| panic!("a GPU is present but could not be opened: {e}")),
    )
}

/// xorshift64*: deterministic test data without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }

    /// `len` values uniform in [lo, hi).
    pub fn vec(&mut self, len: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Conversions so one test body can run in f32 and f64.
pub trait Float: arbor_cuda::Real + std::fmt::Debug {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// Relative tolerance for results that a kernel and a host loop compute in this type
    /// with different operation orders.
    const REL: f64;
    /// Absolute tolerance for results near 0 (a few units in the last place of 1).
    const ABS: f64;
}

impl Float for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    const REL: f64 = 1e-5;
    const ABS: f64 = 1e-6;
}

impl Float for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    const REL: f64 = 1e-12;
    const ABS: f64 = 1e-14;
}

pub fn to_t<T: Float>(values: &[f64]) -> Vec<T> {
    values.iter().map(|&v| T::from_f64(v)).collect()
}

pub fn to_f64<T: Float>(values: &[T]) -> Vec<f64> {
    values.iter().map(|&v| v.to_f64()).collect()
}

/// Asserts |actual - expected| <= rel |expected| + abs elementwise (NaN only matches NaN).
pub fn assert_close(what: &str, actual: &[f64], expected: &[f64], rel: f64, abs: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else {
            (a - e).abs() <= rel * e.abs() + abs || a == e
        };
        assert!(
            ok,
            "{what}[{i}]: got {a}, expected {e} (rel {rel}, abs {abs})"
        );
    }
}
