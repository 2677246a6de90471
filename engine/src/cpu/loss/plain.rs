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
//!
//! Long rows run sweeps 1 and 2 block by block ([`BLOCK`] entries), each block's `exp`s
//! taken against the running maximum `m_b` of the row so far; sweep 3 then scales block
//! `b` by `exp(m_b - m)` along with `1/S` (one multiply per entry, as before). Row by row,
//! sweep 1 was the only one reading memory, a third of the time at 8142 classes with the
//! arithmetic idle; block by block, a block's logits stream in while the previous block's
//! `exp`s are computed, and its `u` is still in L1 for its own.
use super::simd::{MulAdd, SimdFloat};
use super::{assume_init, sweep_exp, sweep_logits, Ahead, Consts, MaybeUninit};

/// Rows per group: a vector of `ln`s, and (at 1000 classes) 64 KiB of gradient rows that
/// stay in L2 between the sweeps.
pub const GROUP: usize = 16;

/// Entries per block of sweeps 1 and 2: 4 KiB of f32 logits and as much gradient, well
/// inside L1 between the two sweeps. Rows up to this long are one block.
const BLOCK: usize = 1024;

/// Sweeps 1 and 2 of one row, block by block: `e_j = exp(u_j - m_b)` into `g`, each
/// block's shift `m_b` into `shifts`; returns the row's maximum `m` and
/// `S = sum_j exp(u_j - m)` in f64, or the column of the first non-finite logit.
/// `more`: whether the task has logits after this row (to prefetch).
#[inline(always)]
fn sweep_blocks<T: SimdFloat, M: MulAdd>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    k: &Consts<T>,
    shifts: &mut [T],
    more: bool,
) -> Result<(T, f64), usize> {
    let (mut m, mut s) = (T::NEG_INFINITY, 0.0f64);
    let blocks = z
        .chunks(BLOCK)
        .zip(g.chunks_mut(BLOCK))
        .zip(k.offsets.chunks(BLOCK));
    let last = z.len().div_ceil(BLOCK) - 1;
    for (b, ((z_b, g_b), o_b)) in blocks.enumerate() {
        let at = b * BLOCK;
        let (g_b, m_b) = sweep_logits::<T, M>(z_b, g_b, o_b, k.logits());
        if m_b > m {
            if s != 0.0 {
                // Rescale the sum so far to the new maximum.
                s *= (m.to_f64() - m_b.to_f64()).exp();
            }
            m = m_b;
        }
        if m == T::NEG_INFINITY {
            // Every class so far dropped (`-inf` offsets): `exp(u - m)` would be NaN.
            if let Some(c) = z_b.iter().position(|v| !v.is_finite()) {
                return Err(at + c);
            }
            g_b.fill(T::ZERO);
        } else {
            let ahead = Ahead::after(z_b, g_b, more || b < last);
            s += sweep_exp::<T, M>(z_b, g_b, m, ahead)
                .map_err(|c| at + c)?
                .to_f64();
        }
        shifts[b] = m;
    }
    Ok((m, s))
}

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
    let n_blocks = cols.div_ceil(BLOCK);
    let mut shifts = vec![T::ZERO; GROUP * n_blocks];
    let groups = g.chunks_mut(GROUP * cols).zip(l.chunks_mut(GROUP));
    for (t, (g, l)) in groups.enumerate() {
        let first = r0 + t * GROUP;
        let z = &z[first * cols..(first + l.len()) * cols];
        // Sweeps 1 and 2: `exp(u_j - m_b)` into the gradient rows, `m` and `S` per row.
        let (mut m, mut s) = ([T::ZERO; GROUP], [1.0f64; GROUP]);
        let rows_in = g.chunks_mut(cols).zip(z.chunks_exact(cols));
        for (i, ((g_row, z_row), row_shifts)) in
            rows_in.zip(shifts.chunks_mut(n_blocks)).enumerate()
        {
            let more = first + i + 1 < r0 + rows;
            match sweep_blocks::<T, M>(z_row, g_row, k, row_shifts, more) {
                Ok(row) => (m[i], s[i]) = row,
                Err(c) => return Some((first + i, c)),
            }
        }
        let mut ln_s = [T::ZERO; GROUP];
        for i in 0..GROUP {
            ln_s[i] = T::from_f64(s[i]).fast_ln();
        }
        // Sweep 3: `g_j = a_b e_j` with `a_b = gs c exp(m_b - m) / S`, zero where the clamp
        // stops the gradient, and the target's `gs c (p_y - 1)` in f64 (in f32 it loses
        // its digits as `p_y -> 1`).
        let rows_out = g.chunks_mut(cols).zip(z.chunks_exact(cols));
        for (i, ((g_row, z_row), row_shifts)) in rows_out.zip(shifts.chunks(n_blocks)).enumerate() {
            // SAFETY: sweep 1 wrote every entry of this row above.
            let g_row = unsafe { assume_init(g_row) };
            let (y, coef) = (k.p.labels[first + i], k.p.coefs[first + i]);
            let (m_row, s_row) = (m[i].to_f64(), s[i]);
            l[i] = T::from_f64(coef * (m_row + ln_s[i].to_f64() - k.logit_f64(z_row[y], y)));
            let gc = gs * coef;
            // `exp(m_b - m)`: exactly 1 for the blocks from the maximum's on, so a one-block
            // row (up to 1024 classes) calls no libm `exp` per row.
            let unshift = |b: usize| {
                if row_shifts[b] == m[i] {
                    1.0
                } else {
                    (row_shifts[b].to_f64() - m_row).exp()
                }
            };
            let p_y = g_row[y].to_f64() * unshift(y / BLOCK) / s_row;
            let blocks = g_row.chunks_mut(BLOCK).zip(z_row.chunks(BLOCK));
            for (b, (g_b, z_b)) in blocks.enumerate() {
                let a = T::from_f64(gc * unshift(b) / s_row);
                if k.clamps() {
                    for (gv, &zv) in g_b.iter_mut().zip(z_b) {
                        let v = *gv * a;
                        *gv = if u.passes(zv) { v } else { T::ZERO };
                    }
                } else {
                    // Without a clamp every entry passes: the same loop without reading `z`.
                    for gv in g_b.iter_mut() {
                        *gv = *gv * a;
                    }
                }
            }
            g_row[y] = if u.passes(z_row[y]) {
                T::from_f64(gc * (p_y - 1.0))
            } else {
                T::ZERO
            };
        }
    }
    None
}
