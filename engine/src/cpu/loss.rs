//! The fused loss row kernel: ARB-Loss and its baselines (the maths is in `ops/loss`).
//!
//! Each row is handled by one task with three sweeps over data that stays in L1/L2:
//! 1. `u_j = scale * clamp(z_j) + offset_j`, its maximum `m` (and a finiteness check);
//! 2. `e_j = exp(u_j - m)` written into the gradient row, summed with lane accumulators;
//! 3. the gradient row rewritten in place as `mask_j (a e_j - b)` (hard targets) or
//!    `mask_j (a e_j - b w_j t_j)` (dense targets); at most two target entries are then
//!    fixed up in f64.
//!
//! So main memory sees the logits read once and the gradient written once. The per-row
//! scalars (log-sum-exp, the loss, focal factors) are computed in f64 from the lane sums.
use super::elementwise::PAR_MIN;
use super::simd::{self, with_simd, LANES};
use crate::backend::FusedLossParams;
use crate::error::{invalid, Result};
use crate::Float;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Hard targets have one component per row; mixup has two.
pub const MAX_COMPONENTS: usize = 2;

/// The per-call constants every row reads, converted to `T` once.
struct Consts<'a, T> {
    cols: usize,
    /// `offset_j` (`-inf` drops class `j`).
    offsets: Vec<T>,
    /// The same with `-inf` replaced by 0, for `sum_j t_j u_j` (validation guarantees
    /// `t_j = 0` wherever the offset is `-inf`, and `0 * -inf` would be NaN).
    finite_offsets: Vec<T>,
    /// Dense-target class weights (ones when none were given).
    weights: Vec<T>,
    margins: &'a [f64],
    offsets_f64: &'a [f64],
    scale: T,
    lo: T,
    hi: T,
    p: &'a FusedLossParams<'a>,
}

impl<'a, T: Float> Consts<'a, T> {
    fn new(p: &'a FusedLossParams<'a>) -> Self {
        let offsets: Vec<T> = if p.offsets.is_empty() {
            vec![T::ZERO; p.cols]
        } else {
            p.offsets.iter().map(|&o| T::from_f64(o)).collect()
        };
        let finite_offsets = offsets
            .iter()
            .map(|&o| if o.is_finite() { o } else { T::ZERO })
            .collect();
        let weights = if p.weights.is_empty() {
            vec![T::ONE; p.cols]
        } else {
            p.weights.iter().map(|&w| T::from_f64(w)).collect()
        };
        let bound = p.clamp.unwrap_or(f64::INFINITY);
        Consts {
            cols: p.cols,
            offsets,
            finite_offsets,
            weights,
            margins: p.margins,
            offsets_f64: p.offsets,
            scale: T::from_f64(p.scale),
            lo: T::from_f64(-bound),
            hi: T::from_f64(bound),
            p,
        }
    }

    /// `u = scale * clamp(z) + o`.
    #[inline(always)]
    fn logit(&self, z: T, o: T) -> T {
        self.scale * z.max(self.lo).min(self.hi) + o
    }

    /// Whether the clamp lets a gradient through `z` (PyTorch's clamp backward).
    #[inline(always)]
    fn passes(&self, z: T) -> bool {
        z >= self.lo && z <= self.hi
    }

    /// `u_c` in f64, for the target entries.
    fn logit_f64(&self, z: T, c: usize) -> f64 {
        let bound = self.p.clamp.unwrap_or(f64::INFINITY);
        let o = self.offsets_f64.get(c).copied().unwrap_or(0.0);
        self.p.scale * z.to_f64().clamp(-bound, bound) + o
    }
}

/// Sweep 1: `(max_j u_j, sum_j u_j)`, or the column of the first non-finite logit.
#[inline(always)]
fn sweep_max<T: Float>(z: &[T], k: &Consts<T>) -> std::result::Result<(T, T), usize> {
    let mut mx = [T::NEG_INFINITY; LANES];
    let mut sum = [T::ZERO; LANES];
    // `z * 0` is NaN exactly when `z` is infinite or NaN, and NaN sticks in a sum.
    let mut poison = [T::ZERO; LANES];
    for (zc, oc) in z.chunks(LANES).zip(k.offsets.chunks(LANES)) {
        for l in 0..zc.len() {
            let u = k.logit(zc[l], oc[l]);
            mx[l] = if u > mx[l] { u } else { mx[l] };
            sum[l] += u;
            poison[l] += zc[l] * T::ZERO;
        }
    }
    if !poison.into_iter().sum::<T>().is_finite() {
        return Err(z.iter().position(|v| !v.is_finite()).unwrap_or(0));
    }
    let m = mx.into_iter().fold(T::NEG_INFINITY, T::max);
    Ok((m, sum.into_iter().sum()))
}

/// Sweep 2: writes `e_j = exp(u_j - m)` to every entry of `g` and returns their sum.
#[inline(always)]
fn sweep_exp<T: Float>(z: &[T], g: &mut [MaybeUninit<T>], m: T, k: &Consts<T>) -> T {
    let mut acc = [T::ZERO; LANES];
    for ((zc, oc), gc) in z
        .chunks(LANES)
        .zip(k.offsets.chunks(LANES))
        .zip(g.chunks_mut(LANES))
    {
        for l in 0..zc.len() {
            let e = (k.logit(zc[l], oc[l]) - m).fast_exp();
            gc[l].write(e);
            acc[l] += e;
        }
    }
    acc.into_iter().sum()
}

/// Sweep 2 for dense targets: also `W = sum_j w_j t_j` and `D = sum_j w_j t_j u_j`.
#[inline(always)]
fn sweep_exp_dense<T: Float>(
    z: &[T],
    t: &[T],
    g: &mut [MaybeUninit<T>],
    m: T,
    k: &Consts<T>,
) -> (T, T, T) {
    let (mut s, mut w, mut d) = ([T::ZERO; LANES], [T::ZERO; LANES], [T::ZERO; LANES]);
    let (z, t, g) = (z.chunks(LANES), t.chunks(LANES), g.chunks_mut(LANES));
    let (o, fo, wt) = (
        k.offsets.chunks(LANES),
        k.finite_offsets.chunks(LANES),
        k.weights.chunks(LANES),
    );
    for (((((zc, tc), gc), oc), fc), wc) in z.zip(t).zip(g).zip(o).zip(fo).zip(wt) {
        for l in 0..zc.len() {
            let e = (k.logit(zc[l], oc[l]) - m).fast_exp();
            gc[l].write(e);
            s[l] += e;
            let wt = wc[l] * tc[l];
            w[l] += wt;
            d[l] += wt * k.logit(zc[l], fc[l]);
        }
    }
    let total = |a: [T; LANES]| a.into_iter().sum::<T>();
    (total(s), total(w), total(d))
}

/// Views a fully written row as initialised.
///
/// # Safety
/// Every element of `g` must have been written.
#[inline(always)]
unsafe fn assume_init<T>(g: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: MaybeUninit<T> has T's layout, and the caller vouches for initialisation.
    unsafe { &mut *(g as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// Focal loss `(1 - p)^gamma (-log p)` and `G` with `dL/du_j = G (p_j - [j = c])`:
/// `G = (1 - p)^gamma + gamma p (1 - p)^(gamma - 1) (-log p)`. `gamma = 0` is plain CE.
fn focal(logp: f64, gamma: f64) -> (f64, f64) {
    if gamma == 0.0 {
        return (-logp, 1.0);
    }
    let q = -logp.exp_m1(); // 1 - p without cancellation when p is near 1
    if q <= 0.0 {
        return (0.0, 0.0); // p = 1: the loss and (for gamma > 0) its slope vanish
    }
    let p = logp.exp();
    let qg = q.powf(gamma);
    (qg * -logp, qg + gamma * p * q.powf(gamma - 1.0) * -logp)
}

/// One target class of a row: its logit `u` (f64), `exp(u - m)`, whether it passes the clamp.
#[derive(Clone, Copy, Default)]
struct TargetEntry {
    class: usize,
    u: f64,
    e: f64,
    passes: bool,
}

/// A hard-target row (one or two components); returns the row's loss.
#[inline(always)]
fn hard_row<T: Float>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    labels: &[usize],
    coefs: &[f64],
    k: &Consts<T>,
) -> std::result::Result<f64, usize> {
    let (m, sum_u) = sweep_max(z, k)?;
    let s_lanes = sweep_exp(z, g, m, k);
    // SAFETY: sweep_exp wrote every entry of the row.
    let g = unsafe { assume_init(g) };
    let (m64, p) = (m.to_f64(), k.p);

    let mut targets = [TargetEntry::default(); MAX_COMPONENTS];
    let mut n_targets = 0;
    for &c in labels {
        if targets[..n_targets].iter().all(|t| t.class != c) {
            let u = k.logit_f64(z[c], c);
            targets[n_targets] = TargetEntry {
                class: c,
                u,
                e: (u - m64).exp(),
                passes: k.passes(z[c]),
            };
            n_targets += 1;
        }
    }
    let targets = &targets[..n_targets];
    let shift = |c: usize| p.scale * k.margins.get(c).copied().unwrap_or(0.0);

    // With margins each component has its own normaliser; summing the non-target terms
    // apart (rather than subtracting the targets from the total) avoids cancellation when
    // the target dominates.
    let has_margin = !k.margins.is_empty();
    let s_rest = if has_margin {
        for t in targets {
            g[t.class] = T::ZERO;
        }
        simd::sum(g).to_f64()
    } else {
        0.0
    };
    let s_full = if has_margin {
        s_rest + targets.iter().map(|t| t.e).sum::<f64>()
    } else {
        s_lanes.to_f64()
    };

    let eps = p.smoothing;
    let mut loss = 0.0;
    let mut a = 0.0; // dl/du_j = a e_j - b for every non-target j
    let mut comp = [(0.0, 0.0); MAX_COMPONENTS]; // (coef (1 - eps) G_k, lse_k)
    for (ci, (&c, &coef)) in labels.iter().zip(coefs).enumerate() {
        let tc = targets
            .iter()
            .find(|t| t.class == c)
            .copied()
            .unwrap_or_default();
        let s_k = if has_margin {
            let margined = |t: &TargetEntry| {
                let sh = if t.class == c { shift(c) } else { 0.0 };
                (t.u - sh - m64).exp()
            };
            s_rest + targets.iter().map(margined).sum::<f64>()
        } else {
            s_full
        };
        let lse_k = m64 + s_k.ln();
        let (l, big_g) = focal(tc.u - shift(c) - lse_k, p.gamma);
        let c1 = coef * (1.0 - eps);
        loss += c1 * l;
        a += c1 * big_g / s_k;
        comp[ci] = (c1 * big_g, lse_k);
    }
    let smooth = eps * coefs.iter().sum::<f64>();
    let inv_c = 1.0 / k.cols as f64;
    if smooth != 0.0 {
        let lse0 = m64 + s_full.ln();
        loss += smooth * (lse0 - sum_u.to_f64() * inv_c);
        a += smooth / s_full;
    }

    // Sweep 3: the non-target entries.
    let gs = p.scale * p.grad_scale;
    let (at, bt) = (T::from_f64(a * gs), T::from_f64(smooth * inv_c * gs));
    for (gc, zc) in g.chunks_mut(LANES).zip(z.chunks(LANES)) {
        for l in 0..zc.len() {
            let v = gc[l] * at - bt;
            gc[l] = if k.passes(zc[l]) { v } else { T::ZERO };
        }
    }
    // The target entries, in f64.
    for t in targets {
        let mut v = 0.0;
        if t.passes {
            v = smooth * (t.e / s_full - inv_c);
            for (&c, &(cg, lse_k)) in labels.iter().zip(&comp) {
                let sh = if t.class == c { shift(c) } else { 0.0 };
                let hit = if t.class == c { 1.0 } else { 0.0 };
                v += cg * ((t.u - sh - lse_k).exp() - hit);
            }
        }
        g[t.class] = T::from_f64(v * gs);
    }
    Ok(loss)
}

/// A dense-target row: `l = W lse(u) - sum_j w_j t_j u_j`,
/// `dl/du_j = W p_j - w_j t_j` with `W = sum_j w_j t_j`.
#[inline(always)]
fn dense_row<T: Float>(
    z: &[T],
    t: &[T],
    g: &mut [MaybeUninit<T>],
    k: &Consts<T>,
) -> std::result::Result<f64, usize> {
    let (m, _) = sweep_max(z, k)?;
    let (s, w, d) = sweep_exp_dense(z, t, g, m, k);
    // SAFETY: sweep_exp_dense wrote every entry of the row.
    let g = unsafe { assume_init(g) };
    let (s, w) = (s.to_f64(), w.to_f64());
    let lse = m.to_f64() + s.ln();
    let gs = k.p.scale * k.p.grad_scale;
    let (at, bt) = (T::from_f64(gs * w / s), T::from_f64(gs));
    for (((gc, zc), tc), wc) in g
        .chunks_mut(LANES)
        .zip(z.chunks(LANES))
        .zip(t.chunks(LANES))
        .zip(k.weights.chunks(LANES))
    {
        for l in 0..zc.len() {
            let v = gc[l] * at - bt * wc[l] * tc[l];
            gc[l] = if k.passes(zc[l]) { v } else { T::ZERO };
        }
    }
    Ok(w * lse - d.to_f64())
}

/// Catches inconsistent parameters that would otherwise index out of bounds.
fn check_params(p: &FusedLossParams, z_len: usize, dense_len: Option<usize>) -> Result<()> {
    let n = p.rows * p.cols;
    let per_class_ok = |v: &[f64]| v.is_empty() || v.len() == p.cols;
    let bad = if z_len != n {
        Some(format!("{z_len} logits for [{}, {}]", p.rows, p.cols))
    } else if !(per_class_ok(p.offsets) && per_class_ok(p.margins) && per_class_ok(p.weights)) {
        Some(format!("per-class parameters must have {} entries", p.cols))
    } else if let Some(len) = dense_len {
        (len != n).then(|| format!("{len} target values for [{}, {}]", p.rows, p.cols))
    } else if !(1..=MAX_COMPONENTS).contains(&p.per_row)
        || p.labels.len() != p.rows * p.per_row
        || p.coefs.len() != p.labels.len()
    {
        Some(format!(
            "{} labels and {} coefficients for {} rows of {} components",
            p.labels.len(),
            p.coefs.len(),
            p.rows,
            p.per_row
        ))
    } else {
        p.labels
            .iter()
            .find(|&&c| c >= p.cols)
            .map(|c| format!("label {c} out of range for {} classes", p.cols))
    };
    match bad {
        Some(msg) => invalid("fused_loss", msg),
        None => Ok(()),
    }
}

/// Runs the kernel: each row's loss (`[rows]`) and `grad_scale * dl_i/dz_i` (`[rows, cols]`).
pub fn fused_loss<T: Float>(
    z: &[T],
    dense: Option<&[T]>,
    p: &FusedLossParams,
) -> Result<(Vec<T>, Vec<T>)> {
    check_params(p, z.len(), dense.map(|d| d.len()))?;
    let (rows, cols) = (p.rows, p.cols);
    let consts = Consts::new(p);
    let mut loss = vec![T::ZERO; rows];
    // Left uninitialised: sweep 2 writes every entry, so zeroing would only add a pass.
    let mut grad: Vec<T> = Vec::with_capacity(rows * cols);
    if cols == 0 {
        return Ok((loss, grad));
    }
    let k = &consts;
    // Returns the first (row, column) holding a non-finite logit, if any.
    let run_rows = |r0: usize, g: &mut [MaybeUninit<T>], l: &mut [T]| -> Option<(usize, usize)> {
        with_simd(|| {
            for (j, (g_row, l_row)) in g.chunks_mut(cols).zip(l.iter_mut()).enumerate() {
                let r = r0 + j;
                let z_row = &z[r * cols..(r + 1) * cols];
                let res = match dense {
                    Some(t) => dense_row(z_row, &t[r * cols..(r + 1) * cols], g_row, k),
                    None => {
                        let span = r * p.per_row..(r + 1) * p.per_row;
                        hard_row(z_row, g_row, &p.labels[span.clone()], &p.coefs[span], k)
                    }
                };
                match res {
                    Ok(v) => *l_row = T::from_f64(v),
                    Err(c) => return Some((r, c)),
                }
            }
            None
        })
    };
    let spare = &mut grad.spare_capacity_mut()[..rows * cols];
    let problem = if rows * cols >= PAR_MIN && rows > 1 {
        let rows_per_task = (PAR_MIN / 2 / cols).max(1);
        spare
            .par_chunks_mut(rows_per_task * cols)
            .zip(loss.par_chunks_mut(rows_per_task))
            .enumerate()
            .filter_map(|(i, (g, l))| run_rows(i * rows_per_task, g, l))
            .min()
    } else {
        run_rows(0, spare, &mut loss)
    };
    if let Some((r, c)) = problem {
        let v = z[r * cols + c].to_f64();
        return invalid(
            "fused_loss",
            format!("logit [{r}, {c}] is {v}: logits must be finite (the clamp would hide it)"),
        );
    }
    // SAFETY: no row reported a problem, so every row ran sweep 2, which wrote all of its
    // `cols` entries; together they are the first `rows * cols` elements.
    unsafe { grad.set_len(rows * cols) };
    Ok((loss, grad))
}
