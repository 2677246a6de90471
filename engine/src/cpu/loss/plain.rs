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
//!
//! With a clamp (ARB-Loss's `[-30, 30]`) every row's `u` lies in a range known up front,
//! and the shift is that range's midpoint (`super::Shift`): sweeps 1 and 2 are then one
//! pass (`sweeps::sweep_shifted`) that also applies the clamp's mask, every block has the
//! same shift, and sweep 3 is one multiply per entry.
use super::simd::{MulAdd, SimdFloat};
use super::sweeps::{first_non_finite, sweep_shifted};
use super::{assume_init, sweep_exp, sweep_logits, Ahead, Consts, MaybeUninit, Shift};

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
            if let Some(c) = first_non_finite(z_b) {
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

/// [`sweep_blocks`] where a clamp bounds `u`: one pass per block against the shift
/// `mid`, which is every block's; returns `S = sum_j exp(u_j - mid)` in f64.
#[inline(always)]
fn sweep_shifted_blocks<T: SimdFloat, M: MulAdd>(
    z: &[T],
    g: &mut [MaybeUninit<T>],
    k: &Consts<T>,
    shift: &Shift<T>,
    more: bool,
) -> Result<f64, usize> {
    let mut s = 0.0f64;
    let blocks = z
        .chunks(BLOCK)
        .zip(g.chunks_mut(BLOCK))
        .zip(shift.offsets.chunks(BLOCK));
    let last = z.len().div_ceil(BLOCK) - 1;
    for (b, ((z_b, g_b), o_b)) in blocks.enumerate() {
        let ahead = Ahead::after_or_within(z_b, g_b, more || b < last);
        let s_b = sweep_shifted::<T, M>(z_b, g_b, o_b, k.logits(), ahead, shift.drops);
        s += s_b.map_err(|c| b * BLOCK + c)?.to_f64();
    }
    Ok(s)
}

/// `ln s` for a row sum against a [`Shift`], which can lie anywhere in `[e^-64, C e^64]`:
/// split off the power of two exactly (`s = f 2^k`, `f` in `[1, 2)`), so that only
/// `ln f` is computed at `T`'s precision. `ln s` whole in f32 would round to its ulp near
/// 64, eight times that of a row-maximum sum's `ln` (which lies in `[0, ln C]`).
#[inline(always)]
pub(super) fn ln_split<T: SimdFloat>(s: f64) -> f64 {
    const MANTISSA: u64 = (1 << 52) - 1;
    let bits = s.to_bits();
    let k = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let f = f64::from_bits((bits & MANTISSA) | (1023 << 52));
    T::from_f64(f).fast_ln().to_f64() + k as f64 * std::f64::consts::LN_2
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
            let row = match &k.shift {
                Some(shift) => sweep_shifted_blocks::<T, M>(z_row, g_row, k, shift, more)
                    .map(|s| (T::from_f64(shift.mid), s)),
                None => sweep_blocks::<T, M>(z_row, g_row, k, row_shifts, more),
            };
            match row {
                Ok(row) => (m[i], s[i]) = row,
                Err(c) => return Some((first + i, c)),
            }
        }
        let mut ln_s = [0.0f64; GROUP];
        if k.shift.is_some() {
            for i in 0..l.len() {
                ln_s[i] = ln_split::<T>(s[i]);
            }
        } else {
            let mut ln_t = [T::ZERO; GROUP];
            for i in 0..GROUP {
                ln_t[i] = T::from_f64(s[i]).fast_ln();
            }
            for i in 0..GROUP {
                ln_s[i] = ln_t[i].to_f64();
            }
        }
        // Sweep 3: `g_j = a_b e_j` with `a_b = gs c exp(m_b - m) / S`, zero where the clamp
        // stops the gradient, and the target's `gs c (p_y - 1)` in f64 (in f32 it loses
        // its digits as `p_y -> 1`).
        let rows_out = g.chunks_mut(cols).zip(z.chunks_exact(cols));
        for (i, ((g_row, z_row), row_shifts)) in rows_out.zip(shifts.chunks(n_blocks)).enumerate() {
            // SAFETY: sweep 1 wrote every entry of this row above.
            let g_row = unsafe { assume_init(g_row) };
            let (y, coef) = (k.p.labels[first + i], k.p.coefs[first + i]);
            let m_row = match &k.shift {
                Some(shift) => shift.mid,
                None => m[i].to_f64(),
            };
            let s_row = s[i];
            l[i] = T::from_f64(coef * (m_row + ln_s[i] - k.logit_f64(z_row[y], y)));
            let gc = gs * coef;
            // `exp(m_b - m)`: exactly 1 for the blocks from the maximum's on, so a one-block
            // row (up to 1024 classes) calls no libm `exp` per row.
            let unshift = |b: usize| {
                if k.shift.is_some() || row_shifts[b] == m[i] {
                    1.0
                } else {
                    (row_shifts[b].to_f64() - m_row).exp()
                }
            };
            let p_y = g_row[y].to_f64() * unshift(y / BLOCK) / s_row;
            let blocks = g_row.chunks_mut(BLOCK).zip(z_row.chunks(BLOCK));
            for (b, (g_b, z_b)) in blocks.enumerate() {
                let a = T::from_f64(gc * unshift(b) / s_row);
                // With a shift, sweep 1 applied the clamp's mask already.
                if k.clamps() && k.shift.is_none() {
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
