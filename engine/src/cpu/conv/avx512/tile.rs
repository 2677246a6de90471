//! The register tiles: `R x V` accumulators of 16 lanes, one fused multiply-add each per
//! reduction step, with `R` scalars of one operand broadcast and `V` vectors of the other
//! loaded ([`fma_step`]). [`panel_product`] drives `8 x 32` tiles over a whole product
//! (forward and input grad); [`weight_tile`] is the weight gradient's `8 x 48` tile.
use super::lanes::{load, LANES};
use super::source::Source;
use std::arch::x86_64::*;

/// Tile of the forward and input-grad products: 8 rows x 2 vectors (16 accumulators).
const MR: usize = 8;
const NV: usize = 2;
/// Tile of the weight gradient: 8 output channels x 3 vectors of input channels.
pub const WR: usize = 8;
pub const WV: usize = 3;

pub type Tile<const R: usize, const V: usize> = [[__m512; V]; R];

/// One reduction step of a tile: `sum[i][v] += a[i] * b[v]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn fma_step<const R: usize, const V: usize>(sum: &mut Tile<R, V>, a: &[f32; R], b: &[__m512; V]) {
    for (row, &a) in sum.iter_mut().zip(a) {
        let ai = _mm512_set1_ps(a);
        for (acc, &bv) in row.iter_mut().zip(b) {
            *acc = _mm512_fmadd_ps(ai, bv, *acc);
        }
    }
}

/// `A B` for an `MR`-row panel `A` (`panel[r*MR + i]` is `A(i, r)`: one step's scalars
/// are adjacent) and a `B` whose row `r` starts at `b[b_row(r)]`; the tile's vector `v`
/// is at column offset `b_base[v]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn panel_tile(
    panel: &[f32],
    b: &[f32],
    b_row: impl Fn(usize) -> usize,
    b_base: [usize; NV],
) -> Tile<MR, NV> {
    let mut sum = [[_mm512_setzero_ps(); NV]; MR];
    for (r, a) in panel.chunks_exact(MR).enumerate() {
        let row = b_row(r);
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, base) in bv.iter_mut().zip(b_base) {
            *v = load(b, row + base);
        }
        fma_step(&mut sum, a.try_into().expect("MR scalars"), &bv);
    }
    sum
}

/// `m x depth` matrix `a(i, r)` as `[panel][r][MR]`, rows past `m` zero.
pub fn panels(m: usize, depth: usize, a: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut out = vec![0.0; m.div_ceil(MR) * depth * MR];
    for (n, panel) in out.chunks_exact_mut(depth * MR).enumerate() {
        for (r, dst) in panel.chunks_exact_mut(MR).enumerate() {
            for (i, d) in dst.iter_mut().enumerate().take(m.saturating_sub(n * MR)) {
                *d = a(n * MR + i, r);
            }
        }
    }
    out
}

/// How a matrix with 16-aligned column blocks is laid out: plain rows `ld` apart, or an
/// image copy ([`Source`]) whose row `r` is patch row `row[r]` (`src.row`, or a
/// permutation of it).
#[derive(Clone, Copy)]
pub enum Layout<'a> {
    Rows(usize),
    Patches(&'a Source, &'a [usize]),
}

impl Layout<'_> {
    fn row(&self, r: usize) -> usize {
        match self {
            Layout::Rows(ld) => r * ld,
            Layout::Patches(_, row) => row[r],
        }
    }
    fn col(&self, j: usize) -> usize {
        match self {
            Layout::Rows(_) => j,
            Layout::Patches(src, _) => src.col(j),
        }
    }
}

/// `C = A B` for `A` given as panels (`m` rows, `depth` steps) and a `B` with `n`
/// columns, `n` a multiple of 16: `put(at, v)` receives the 16 values of `C` at `c_at`
/// offset `at` (to store, or to add to what is there).
#[target_feature(enable = "avx512f")]
pub fn panel_product(
    a_panels: &[f32],
    (m, depth, n): (usize, usize, usize),
    b: &[f32],
    b_at: Layout,
    c_at: Layout,
    mut put: impl FnMut(usize, __m512),
) {
    for j in (0..n).step_by(NV * LANES) {
        // A last tile with one valid vector repeats it rather than read past the end.
        let b_base = [b_at.col(j), b_at.col((j + LANES).min(n - LANES))];
        // (Column offsets outside the row loop: `col` divides.)
        let c_base = [c_at.col(j), c_at.col((j + LANES).min(n - LANES))];
        for (ib, panel) in a_panels.chunks_exact(depth * MR).enumerate() {
            let acc = panel_tile(panel, b, |r| b_at.row(r), b_base);
            for (i, vectors) in acc.iter().enumerate() {
                for (v, &vector) in vectors.iter().enumerate() {
                    let (row, col) = (ib * MR + i, j + v * LANES);
                    if row < m && col < n {
                        put(c_at.row(row) + c_base[v], vector);
                    }
                }
            }
        }
    }
}

/// One `WR x WV` tile of `dW` over all output rows: for a row starting at `(x0, g0)` and
/// `t < len`, the scalars are `dy_t[g0 + t*ld + cb..][..WR]` and vector `v` is
/// `images[x0 + t*step + off[v]..][..16]`. Not inlined: compiled on its own, LLVM keeps
/// the 24 accumulators in registers (inlined into the loops around it, it spilled them).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
#[inline(never)]
pub fn weight_tile(
    runs: &[(usize, usize)],
    len: usize,
    images: &[f32],
    step: usize,
    off: [usize; WV],
    dy_t: &[f32],
    ld: usize,
    cb: usize,
) -> Tile<WR, WV> {
    let mut sum = [[_mm512_setzero_ps(); WV]; WR];
    for &(x0, g0) in runs {
        for t in 0..len {
            let mut bv = [_mm512_setzero_ps(); WV];
            for (v, o) in bv.iter_mut().zip(off) {
                *v = load(images, x0 + t * step + o);
            }
            let a = dy_t[g0 + t * ld + cb..][..WR]
                .try_into()
                .expect("WR scalars");
            fma_step(&mut sum, a, &bv);
        }
    }
    sum
}
