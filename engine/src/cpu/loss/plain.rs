//! Rows of the plain hard-target losses (one label, no margins, focal term or smoothing:
//! ARB, cross-entropy, balanced softmax, class-balanced weights) with more classes than
//! the tiles take.
//!
//! The row kernel's sweeps are the same (`super::sweep_logits`, `super::sweep_exp`), but the
//! rows go in groups of [`GROUP`]: sweeps 1 and 2 for every row of the group, then each
//! row's `ln S` across lanes, then sweep 3 row by row. One row at a time, each row was a
//! single dependency chain (max, then `exp`, then the sum, then a scalar `ln`, then the
//! gradient); at 100 classes that chain, not the work, set the time. Grouped, the rows'
//! chains overlap and the `ln`s are one vector operation.
use super::simd::{MulAdd, SimdFloat};
use super::{assume_init, sweep_exp, sweep_logits, Ahead, Consts, MaybeUninit};

/// Rows per group: a vector of `ln`s, and (at 1000 classes) 64 KiB of gradient rows that
/// stay in L2 between the sweeps.
pub const GROUP: usize = 16;

/// Rows `r0..` into `g` and `l`; returns the first (row, column) holding a non-finite
/// logit, if any.
#[inline(always)]
pub fn run_plain_rows<T: SimdFloat, M: MulAdd>(
    z: &[T],
    k: &Consts<T>,
    r0: usize,
    g: &mut [MaybeUninit<T>],
    l: &mut [T],
) -> Option<(usize, usize)> {
    let cols = k.cols;
    let (gs, u) = (k.p.scale * k.p.grad_scale, k.logits());
    let rows = l.len();
    let groups = g.chunks_mut(GROUP * cols).zip(l.chunks_mut(GROUP));
    for (t, (g, l)) in groups.enumerate() {
        let first = r0 + t * GROUP;
        let z = &z[first * cols..(first + l.len()) * cols];
        // Sweeps 1 and 2: `e_j = exp(u_j - m)` into the gradient rows, `m` and `S` per row.
        let (mut m, mut s) = ([T::ZERO; GROUP], [T::ONE; GROUP]);
        for (i, (g_row, z_row)) in g.chunks_mut(cols).zip(z.chunks_exact(cols)).enumerate() {
            let (g_row, m_row) = sweep_logits::<T, M>(z_row, g_row, k);
            let ahead = Ahead::after(z_row, g_row, first + i + 1 < r0 + rows);
            match sweep_exp::<T, M>(z_row, g_row, m_row, ahead) {
                Ok(s_row) => (m[i], s[i]) = (m_row, s_row),
                Err(c) => return Some((first + i, c)),
            }
        }
        let mut ln_s = [T::ZERO; GROUP];
        for i in 0..GROUP {
            ln_s[i] = s[i].fast_ln();
        }
        // Sweep 3: `g_j = a e_j` with `a = gs c / S`, zero where the clamp stops the
        // gradient, and the target's `gs c (p_y - 1)` in f64 (in f32 it loses its digits
        // as `p_y -> 1`).
        for (i, (g_row, z_row)) in g.chunks_mut(cols).zip(z.chunks_exact(cols)).enumerate() {
            // SAFETY: sweep 1 wrote every entry of this row above.
            let g_row = unsafe { assume_init(g_row) };
            let (y, coef) = (k.p.labels[first + i], k.p.coefs[first + i]);
            let lse = m[i].to_f64() + ln_s[i].to_f64();
            l[i] = T::from_f64(coef * (lse - k.logit_f64(z_row[y], y)));
            let (gc, s_row) = (gs * coef, s[i].to_f64());
            let (e_y, a) = (g_row[y].to_f64(), T::from_f64(gc / s_row));
            if k.clamps() {
                for (gv, &zv) in g_row.iter_mut().zip(z_row) {
                    let v = *gv * a;
                    *gv = if u.passes(zv) { v } else { T::ZERO };
                }
            } else {
                // Without a clamp every entry passes: the same loop without reading `z`.
                for gv in g_row.iter_mut() {
                    *gv = *gv * a;
                }
            }
            g_row[y] = if u.passes(z_row[y]) {
                T::from_f64(gc * (e_y / s_row - 1.0))
            } else {
                T::ZERO
            };
        }
    }
    None
}
