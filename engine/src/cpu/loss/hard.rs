//! A hard-target row (one label, or a mixup pair): after sweeps 1 and 2 (`super`), the
//! row's target classes, each component's normaliser and focal loss (with LDAM's margin on
//! its own class), label smoothing, and sweep 3 writing `grad_scale * dl/dz` once.
use super::simd::{self, MulAdd, SimdFloat};
use super::{ln, sweep_exp, sweep_logits, Ahead, Consts, MaybeUninit, MAX_COMPONENTS};

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

/// One target class of a row: its logit `u` (f64), `e = exp(u - m)` as sweep 2 computed it,
/// `exp(u - s m_c - m)` with its own margin taken off, and whether it passes the clamp.
#[derive(Clone, Copy, Default)]
struct TargetEntry {
    class: usize,
    u: f64,
    e: f64,
    e_margined: f64,
    passes: bool,
}

impl TargetEntry {
    /// Component `c`'s view of the entry: margined only for its own class.
    #[inline(always)]
    fn e_for(&self, c: usize) -> f64 {
        if self.class == c {
            self.e_margined
        } else {
            self.e
        }
    }
}

/// `s m_c`: how far LDAM's margin lowers class `c`'s logit (0 without margins).
#[inline(always)]
fn margin_shift<T: SimdFloat>(k: &Consts<T>, c: usize) -> f64 {
    if k.margins.is_empty() {
        0.0
    } else {
        k.p.scale * k.margins[c]
    }
}

/// A hard-target row (one or two components); returns the row's loss. Sweeps 1 and 2,
/// then the row's target classes, their loss terms, and sweep 3 writing `dl/dz`.
#[inline(always)]
pub(super) fn hard_row<T: SimdFloat, M: MulAdd>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    labels: &[usize],
    coefs: &[f64],
    k: &Consts<T>,
) -> std::result::Result<f64, usize> {
    let (g, m) = sweep_logits::<T, M>(z, g, &k.offsets, k.logits());
    // Label smoothing needs `mean_j u_j`, read before sweep 2 overwrites `u`.
    let sum_u = if k.p.smoothing != 0.0 {
        simd::sum(g).to_f64()
    } else {
        0.0
    };
    let s_lanes = sweep_exp::<T, M>(z, g, m, Ahead::NONE)?;
    let m64 = m.to_f64();
    let (entries, n_targets) = target_entries(z, g, labels, k, m64);
    let targets = &entries[..n_targets];
    let terms = hard_terms(g, targets, labels, coefs, k, m64, s_lanes.to_f64(), sum_u);
    write_hard_grad(z, g, targets, labels, &terms, k);
    Ok(terms.loss)
}

/// The row's distinct target classes (at most [`MAX_COMPONENTS`]), after sweep 2 left
/// `e_j = exp(u_j - m)` in `g`.
#[inline(always)]
fn target_entries<T: SimdFloat>(
    z: &[T],
    g: &[T],
    labels: &[usize],
    k: &Consts<T>,
    m64: f64,
) -> ([TargetEntry; MAX_COMPONENTS], usize) {
    let mut targets = [TargetEntry::default(); MAX_COMPONENTS];
    let mut n_targets = 0;
    for &c in labels {
        if targets[..n_targets].iter().all(|t| t.class != c) {
            let (u, e) = (k.logit_f64(z[c], c), g[c].to_f64());
            let e_margined = if k.margins.is_empty() {
                e
            } else {
                (u - margin_shift(k, c) - m64).exp()
            };
            let passes = k.logits().passes(z[c]);
            targets[n_targets] = TargetEntry {
                class: c,
                u,
                e,
                e_margined,
                passes,
            };
            n_targets += 1;
        }
    }
    (targets, n_targets)
}

/// A hard-target row's loss and the terms of its gradient.
struct HardTerms {
    loss: f64,
    /// `dl/du_j = a e_j - b` for every non-target `j`, with `b = smooth / C`.
    a: f64,
    /// `eps * sum_k coef_k`: the smoothing's weight in the row.
    smooth: f64,
    /// `sum_j e_j`, every class at its unmargined logit.
    s_full: f64,
    /// Per component: `(coef (1 - eps) G_k, S_k)`.
    comp: [(f64, f64); MAX_COMPONENTS],
}

/// Each component's normaliser, focal loss and gradient weight, and the smoothing term.
/// With margins each component has its own normaliser; summing the non-target terms apart
/// (rather than subtracting the targets from the total) avoids cancellation when the
/// target dominates (it zeroes the target entries of `g` to do so; sweep 3 rewrites them).
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one row's state, passed rather than bundled
fn hard_terms<T: SimdFloat>(
    g: &mut [T],
    targets: &[TargetEntry],
    labels: &[usize],
    coefs: &[f64],
    k: &Consts<T>,
    m64: f64,
    s_lanes: f64,
    sum_u: f64,
) -> HardTerms {
    let has_margin = !k.margins.is_empty();
    let (s_rest, s_full) = if has_margin {
        for t in targets {
            g[t.class] = T::ZERO;
        }
        let rest = simd::sum(g).to_f64();
        (rest, rest + targets.iter().map(|t| t.e).sum::<f64>())
    } else {
        (0.0, s_lanes)
    };
    let lse_full = m64 + ln::<T>(s_full);

    let eps = k.p.smoothing;
    let mut loss = 0.0;
    let mut a = 0.0;
    let mut comp = [(0.0, 1.0); MAX_COMPONENTS];
    for (ci, (&c, &coef)) in labels.iter().zip(coefs).enumerate() {
        let (s_k, lse_k) = if has_margin {
            let s_k = s_rest + targets.iter().map(|t| t.e_for(c)).sum::<f64>();
            (s_k, m64 + ln::<T>(s_k))
        } else {
            (s_full, lse_full)
        };
        let u_c = targets.iter().find(|t| t.class == c).map_or(0.0, |t| t.u);
        let (l, big_g) = focal(u_c - margin_shift(k, c) - lse_k, k.p.gamma);
        let c1 = coef * (1.0 - eps);
        loss += c1 * l;
        a += c1 * big_g / s_k;
        comp[ci] = (c1 * big_g, s_k);
    }
    let smooth = eps * coefs.iter().sum::<f64>();
    if smooth != 0.0 {
        let inv_c = 1.0 / k.cols as f64;
        loss += smooth * (lse_full - sum_u * inv_c);
        a += smooth / s_full;
    }
    HardTerms {
        loss,
        a,
        smooth,
        s_full,
        comp,
    }
}

/// Sweep 3: `grad_scale * dl/dz` over the row, the non-target entries from `e_j` in `T`,
/// the target entries in f64: `sum_k cg_k (p^(k)_t - [t = c_k])` plus smoothing.
#[inline(always)]
fn write_hard_grad<T: SimdFloat>(
    z: &[T],
    g: &mut [T],
    targets: &[TargetEntry],
    labels: &[usize],
    terms: &HardTerms,
    k: &Consts<T>,
) {
    let inv_c = 1.0 / k.cols as f64;
    let gs = k.p.scale * k.p.grad_scale;
    let (at, bt) = (
        T::from_f64(terms.a * gs),
        T::from_f64(terms.smooth * inv_c * gs),
    );
    let u = k.logits();
    for (gv, &zv) in g.iter_mut().zip(z) {
        let v = *gv * at - bt;
        *gv = if u.passes(zv) { v } else { T::ZERO };
    }
    for t in targets {
        let mut v = 0.0;
        if t.passes {
            v = terms.smooth * (t.e / terms.s_full - inv_c);
            for (&c, &(cg, s_k)) in labels.iter().zip(&terms.comp) {
                let hit = if t.class == c { 1.0 } else { 0.0 };
                v += cg * (t.e_for(c) / s_k - hit);
            }
        }
        g[t.class] = T::from_f64(v * gs);
    }
}
