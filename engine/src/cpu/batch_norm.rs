//! Batch-norm kernels over NCHW viewed as `[n, c, hw]`: channel `c` owns the `n` runs
//! `x[b, c, ..]` of `hw` contiguous values. One rayon task per channel reads its runs
//! (to reduce) and then writes them (to normalise) while they are still in cache.
//!
//! Reductions use `ACC` f32 partial sums within a run and add them, lane by lane, into
//! `ACC` f64 sums for the channel, so no f32 sum ever grows longer than `hw / ACC` terms.
use super::simd::{with_simd, LANES};
use crate::backend::{BatchNormDims, BatchNormStats};
use crate::Float;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The runs of channel `c` in a `[n, c, hw]` buffer.
fn runs<T>(x: &[T], d: BatchNormDims, c: usize) -> impl Iterator<Item = &[T]> {
    (0..d.n).map(move |b| &x[(b * d.c + c) * d.hw..(b * d.c + c + 1) * d.hw])
}

/// Channel `c`'s runs of an output being written.
type OutRuns<'a, T> = Vec<&'a mut [MaybeUninit<T>]>;

/// A new `[n, c, hw]` buffer written by `write(c, runs)`, one rayon task per channel, and
/// the values `write` returned. `write` must write every element of the runs it is given.
///
/// The buffer is not zeroed first: these kernels only stream, and zeroing is one more
/// pass over memory (it cost a third of the forward's time).
fn per_channel_output<T: Float, R: Send>(
    d: &BatchNormDims,
    write: impl Fn(usize, OutRuns<'_, T>) -> R + Sync + Send,
) -> (Vec<T>, Vec<R>) {
    let len = d.n * d.c * d.hw;
    let mut out = Vec::with_capacity(len);
    let mut by_channel: Vec<OutRuns<'_, T>> = (0..d.c).map(|_| Vec::with_capacity(d.n)).collect();
    if d.hw > 0 {
        for (i, run) in out.spare_capacity_mut()[..len].chunks_mut(d.hw).enumerate() {
            by_channel[i % d.c].push(run);
        }
    }
    let results = by_channel
        .into_par_iter()
        .enumerate()
        .map(|(c, runs)| write(c, runs))
        .collect();
    // SAFETY: the channels' runs partition `0..len`, and every `write` below fills each
    // run it receives (zipped with an input run of the same length).
    unsafe { out.set_len(len) };
    (out, results)
}

/// Partial sums per reduction: four registers' worth, so that four additions are in
/// flight at once (with one register, each waits for the previous one: 4 cycles).
const ACC: usize = 4 * LANES;

/// A channel's running sums: each run's `ACC` f32 partial sums are added lane by lane into
/// these f64 lanes, and the lanes are summed once per channel. Summing each run's lanes on
/// the spot was a chain of 31 dependent additions per run and sum (~125 cycles), more than
/// the loads of a 64-value run at 8x8 (the train step's AVX-512 profile put 0.8% of it in
/// `Iterator::sum` alone).
type Lanes64 = [f64; ACC];

#[inline(always)]
fn add_lanes<T: Float>(acc: &mut Lanes64, run: &[T; ACC]) {
    for l in 0..ACC {
        acc[l] += run[l].to_f64();
    }
}

/// `g` where the fused ReLU let it through: where `scale (x - center) + offset > 0`, the
/// pre-activation recomputed exactly as [`normalize_runs`] computed it. Without `RELU`, `g`.
#[inline(always)]
fn relu_masked<T: Float, const RELU: bool>(g: T, x: T, (center, scale, offset): (T, T, T)) -> T {
    if !RELU || scale * (x - center) + offset > T::ZERO {
        g
    } else {
        T::ZERO
    }
}

/// Adds `sum(g')` and `sum(g' (x - center))` of two runs into `(s, p)`, `g'` being `g`
/// masked by [`relu_masked`] (inline: no masked copy of the run is stored).
#[inline(always)]
fn sum_and_centered_dot<T: Float, const RELU: bool>(
    g: &[T],
    x: &[T],
    affine: (T, T, T),
    (s64, p64): (&mut Lanes64, &mut Lanes64),
) {
    let center = affine.0;
    let (mut s, mut p) = ([T::ZERO; ACC], [T::ZERO; ACC]);
    let (gc, xc) = (g.chunks_exact(ACC), x.chunks_exact(ACC));
    let (g_tail, x_tail) = (gc.remainder(), xc.remainder());
    for (gc, xc) in gc.zip(xc) {
        for l in 0..ACC {
            let g = relu_masked::<T, RELU>(gc[l], xc[l], affine);
            s[l] += g;
            p[l] += g * (xc[l] - center);
        }
    }
    for (l, (&g, &x)) in g_tail.iter().zip(x_tail).enumerate() {
        let g = relu_masked::<T, RELU>(g, x, affine);
        s[l] += g;
        p[l] += g * (x - center);
    }
    add_lanes(s64, &s);
    add_lanes(p64, &p);
}

/// Adds `sum(v - shift)` and `sum((v - shift)^2)` of a run into `(s, q)`.
#[inline(always)]
fn shifted_moments<T: Float>(x: &[T], shift: T, (s64, q64): (&mut Lanes64, &mut Lanes64)) {
    let (mut s, mut q) = ([T::ZERO; ACC], [T::ZERO; ACC]);
    let chunks = x.chunks_exact(ACC);
    let tail = chunks.remainder();
    for xc in chunks {
        for l in 0..ACC {
            let v = xc[l] - shift;
            s[l] += v;
            q[l] += v * v;
        }
    }
    for (l, &x) in tail.iter().enumerate() {
        let v = x - shift;
        s[l] += v;
        q[l] += v * v;
    }
    add_lanes(s64, &s);
    add_lanes(q64, &q);
}

/// `y = scale (x - center) + offset` over every run of one channel, then `max(y, 0)` with
/// `relu` (the fused batch-norm + ReLU: one pass instead of two). Centring before scaling
/// keeps f32 precise when |mean| >> std (folding `center` into `offset` would cancel).
#[inline(always)]
fn normalize_runs<'a, T: Float>(
    out: OutRuns<'_, T>,
    x: impl Iterator<Item = &'a [T]>,
    (center, scale, offset): (T, T, T),
    relu: bool,
) {
    for (o, xr) in out.into_iter().zip(x) {
        if relu {
            for (o, &v) in o.iter_mut().zip(xr) {
                let y = scale * (v - center) + offset;
                o.write(if y > T::ZERO { y } else { T::ZERO });
            }
        } else {
            for (o, &v) in o.iter_mut().zip(xr) {
                o.write(scale * (v - center) + offset);
            }
        }
    }
}

/// What the fused forward saves for its backward: the batch statistics, and the exact
/// per-channel `scale` it multiplied by, so that the backward recomputes the ReLU mask
/// `scale (x - mean) + beta > 0` bit for bit instead of reading `y` back.
pub struct BatchNormReluSaved<T> {
    pub stats: BatchNormStats<Vec<T>>,
    pub scale: Vec<T>,
}

/// Training forward: per channel, `mean = E[x]`, `var = E[(x - mean)^2]` (biased),
/// `y = gamma (x - mean) / sqrt(var + eps) + beta`. Returns `y` and the statistics.
pub fn forward_train<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    d: &BatchNormDims,
    eps: f64,
) -> (Vec<T>, BatchNormStats<Vec<T>>) {
    let (y, saved) = forward_train_act(x, gamma, beta, d, eps, false);
    (y, saved.stats)
}

/// [`forward_train`], then `max(y, 0)` when `relu`, in the same pass.
pub fn forward_train_act<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    d: &BatchNormDims,
    eps: f64,
    relu: bool,
) -> (Vec<T>, BatchNormReluSaved<T>) {
    let count = (d.n * d.hw).max(1) as f64;
    let (y, stats) = per_channel_output(d, |c, out| {
        with_simd(
            #[inline(always)]
            || {
                // Moments about the channel's first value rather than 0: the sum of squares
                // then does not cancel catastrophically when |mean| >> std.
                let shift = runs(x, *d, c).next().and_then(|r| r.first().copied());
                let shift = shift.unwrap_or(T::ZERO);
                let (mut s1, mut s2) = ([0.0; ACC], [0.0; ACC]);
                for r in runs(x, *d, c) {
                    shifted_moments(r, shift, (&mut s1, &mut s2));
                }
                let (s1, s2): (f64, f64) = (s1.iter().sum(), s2.iter().sum());
                let m = s1 / count;
                let var = (s2 / count - m * m).max(0.0);
                let mean = shift.to_f64() + m;
                let inv_std = 1.0 / (var + eps).sqrt();
                let (mean_t, scale) = (T::from_f64(mean), T::from_f64(gamma[c].to_f64() * inv_std));
                normalize_runs(out, runs(x, *d, c), (mean_t, scale, beta[c]), relu);
                (mean_t, T::from_f64(var), T::from_f64(inv_std), scale)
            },
        )
    });
    let saved = BatchNormReluSaved {
        stats: BatchNormStats {
            mean: stats.iter().map(|s| s.0).collect(),
            var: stats.iter().map(|s| s.1).collect(),
            inv_std: stats.iter().map(|s| s.2).collect(),
        },
        scale: stats.iter().map(|s| s.3).collect(),
    };
    (y, saved)
}

/// Evaluation forward from `[gamma, beta, running_mean, running_var]`:
/// `y = gamma (x - running_mean) / sqrt(running_var + eps) + beta`, then `max(y, 0)` when
/// `relu`, in the same pass.
pub fn forward_eval_act<T: Float>(
    x: &[T],
    [gamma, beta, running_mean, running_var]: [&[T]; 4],
    d: &BatchNormDims,
    eps: f64,
    relu: bool,
) -> Vec<T> {
    per_channel_output(d, |c, out| {
        let scale = T::from_f64(gamma[c].to_f64() / (running_var[c].to_f64() + eps).sqrt());
        let affine = (running_mean[c], scale, beta[c]);
        with_simd(
            #[inline(always)]
            || normalize_runs(out, runs(x, *d, c), affine, relu),
        );
    })
    .0
}

/// Training backward from `dy`, with `xhat = (x - mean) inv_std` and `m = n*hw`:
/// `dbeta = sum(dy)`, `dgamma = sum(dy xhat)`,
/// `dx = gamma inv_std (dy - dbeta/m - xhat dgamma/m)`. One task per channel: a pass
/// that reduces, then a pass that writes `dx`. Returns `(dx, dgamma, dbeta)`.
pub fn backward<T: Float>(
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    inv_std: &[T],
    d: &BatchNormDims,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    backward_act(dy, x, gamma, mean, inv_std, None, d)
}

/// The fused batch-norm + ReLU backward: [`backward`] of `dz = dy [z > 0]`, where
/// `z = scale (x - mean) + beta` is recomputed from the forward's exact `(scale, beta)`
/// (`relu`), in the same two passes. Without `relu`, plain [`backward`].
pub fn backward_act<T: Float>(
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    inv_std: &[T],
    relu: Option<(&[T], &[T])>,
    d: &BatchNormDims,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (dx, sums) = per_channel_output(d, |c, out| {
        let channel = BackwardChannel {
            dy,
            x,
            d,
            gamma: gamma[c],
            mean: mean[c],
            inv_std: inv_std[c],
        };
        with_simd(
            #[inline(always)]
            || match relu {
                None => channel.run::<false>(c, out, (mean[c], T::ZERO, T::ZERO)),
                Some((scale, beta)) => channel.run::<true>(c, out, (mean[c], scale[c], beta[c])),
            },
        )
    });
    let dgamma = sums.iter().map(|s| s.0).collect();
    let dbeta = sums.iter().map(|s| s.1).collect();
    (dx, dgamma, dbeta)
}

/// One channel's backward: its inputs and statistics.
struct BackwardChannel<'a, T> {
    dy: &'a [T],
    x: &'a [T],
    d: &'a BatchNormDims,
    gamma: T,
    mean: T,
    inv_std: T,
}

impl<T: Float> BackwardChannel<'_, T> {
    /// Writes channel `c`'s `dx` into `out` and returns `(dgamma, dbeta)`; with `RELU`,
    /// of `dz = dy [scale (x - mean) + beta > 0]` (`affine = (mean, scale, beta)`).
    #[inline(always)]
    fn run<const RELU: bool>(&self, c: usize, out: OutRuns<'_, T>, affine: (T, T, T)) -> (T, T) {
        let d = *self.d;
        let count = (d.n * d.hw).max(1) as f64;
        let (mut s, mut p) = ([0.0; ACC], [0.0; ACC]);
        for (g, xr) in runs(self.dy, d, c).zip(runs(self.x, d, c)) {
            sum_and_centered_dot::<T, RELU>(g, xr, affine, (&mut s, &mut p));
        }
        let (sum_dy, sum_dy_xc): (f64, f64) = (s.iter().sum(), p.iter().sum());
        let (istd, gam) = (self.inv_std.to_f64(), self.gamma.to_f64());
        let dbeta = sum_dy;
        let dgamma = sum_dy_xc * istd;
        // dx = a dy + b (x - mean) + k, expanding xhat = (x - mean) istd.
        let a = gam * istd;
        let b = -a * istd * dgamma / count;
        let k = -a * dbeta / count;
        let (a, b, k, mu) = (T::from_f64(a), T::from_f64(b), T::from_f64(k), self.mean);
        for ((o, g), xr) in out
            .into_iter()
            .zip(runs(self.dy, d, c))
            .zip(runs(self.x, d, c))
        {
            for ((o, &g), &v) in o.iter_mut().zip(g).zip(xr) {
                let g = relu_masked::<T, RELU>(g, v, affine);
                o.write(a * g + b * (v - mu) + k);
            }
        }
        (T::from_f64(dgamma), T::from_f64(dbeta))
    }
}
