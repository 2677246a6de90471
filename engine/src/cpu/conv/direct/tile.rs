//! The register tiles: `R x V` accumulators of one vector each, one multiply-add each per
//! reduction step, with `R` scalars of one operand broadcast and `V` vectors of the other
//! loaded ([`fma_step`]). [`panel_product`] drives the forward and input-grad tiles over a
//! whole product; [`weight_tile`] is the weight gradient's. Each level picks `R` and `V`
//! to fill its register file (see `isa.rs`).
use super::lanes::Lanes;
use super::source::Source;

pub type Tile<L, const R: usize, const V: usize> = [[<L as Lanes>::V; V]; R];

/// One reduction step of a tile: `sum[i][v] += a[i] * b[v]`, in the order that keeps
/// the fewest operands live beside the `R x V` accumulators: a row at a time (`V` loaded
/// vectors and one broadcast) for a tile at least as tall as it is wide, else a column at
/// a time (`R` broadcasts and one loaded vector). On AVX2's 16 registers the 2 x 6
/// weight tile fits only column by column (12 + 2 + 1).
#[inline(always)]
fn fma_step<L: Lanes, const R: usize, const V: usize>(
    sum: &mut Tile<L, R, V>,
    a: &[f32; R],
    b: &[L::V; V],
) {
    if V <= R {
        for (row, &a) in sum.iter_mut().zip(a) {
            let ai = L::splat(a);
            for (acc, &bv) in row.iter_mut().zip(b) {
                *acc = L::mul_add(ai, bv, *acc);
            }
        }
    } else {
        let mut splats = [L::zero(); R];
        for (s, &a) in splats.iter_mut().zip(a) {
            *s = L::splat(a);
        }
        for (v, &bv) in b.iter().enumerate() {
            for (row, &ai) in sum.iter_mut().zip(&splats) {
                row[v] = L::mul_add(ai, bv, row[v]);
            }
        }
    }
}

/// `A B` for an `MR`-row panel `A` (`panel[r*MR + i]` is `A(i, r)`: one step's scalars
/// are adjacent) and a `B` whose row `r` starts at `b[rows.next()]`; the tile's vector `v`
/// is at column offset `b_base[v]`.
///
/// The loads are bounds-checked once per step (the row against the last start that
/// leaves room for every vector), not once per vector: each checked load was three
/// compares and branches, and the lengths and offsets they kept live pushed AVX2's tile
/// out of its 16 registers (one accumulator spilled and reloaded every step).
#[inline(always)]
fn panel_tile<L: Lanes, const MR: usize, const NV: usize>(
    panel: &[f32],
    b: &[f32],
    rows: impl Iterator<Item = usize>,
    b_base: [usize; NV],
) -> Tile<L, MR, NV> {
    let mut reach = 0;
    for base in b_base {
        reach = reach.max(base + L::N);
    }
    let last_row = b
        .len()
        .checked_sub(reach)
        .expect("B holds the tile's columns");
    let mut sum = [[L::zero(); NV]; MR];
    for (a, row) in panel.chunks_exact(MR).zip(rows) {
        // (No formatted message: its arguments would be kept live, on the stack.)
        assert!(row <= last_row);
        let mut bv = [L::zero(); NV];
        for (v, base) in bv.iter_mut().zip(b_base) {
            // SAFETY: `row + base + N <= last_row + reach = b.len()`.
            *v = unsafe { L::load_ptr(b.as_ptr().add(row + base)) };
        }
        fma_step::<L, MR, NV>(&mut sum, a.try_into().expect("MR scalars"), &bv);
    }
    sum
}

/// `m x depth` matrix `a(i, r)` as `[panel][r][mr]`, rows past `m` zero.
pub fn panels(m: usize, depth: usize, mr: usize, a: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut out = vec![0.0; m.div_ceil(mr) * depth * mr];
    for (n, panel) in out.chunks_exact_mut(depth * mr).enumerate() {
        for (r, dst) in panel.chunks_exact_mut(mr).enumerate() {
            for (i, d) in dst.iter_mut().enumerate().take(m.saturating_sub(n * mr)) {
                *d = a(n * mr + i, r);
            }
        }
    }
    out
}

/// How a matrix with vector-aligned column blocks is laid out: plain rows `ld` apart, or
/// an image copy ([`Source`]) whose row `r` is patch row `row[r]` (`src.row`, or a
/// permutation of it).
#[derive(Clone, Copy)]
pub enum Layout<'a> {
    Rows(usize),
    Patches(&'a Source, &'a [usize]),
}

impl Layout<'_> {
    #[inline(always)]
    fn row(&self, r: usize) -> usize {
        match self {
            Layout::Rows(ld) => r * ld,
            Layout::Patches(_, row) => row[r],
        }
    }
    #[inline(always)]
    fn col(&self, j: usize) -> usize {
        match self {
            Layout::Rows(_) => j,
            Layout::Patches(src, _) => src.col(j),
        }
    }
}

/// `C = A B` for `A` given as panels (`m` rows, `depth` steps) and a `B` with `n`
/// columns, `n` a multiple of `N`: `put(at, v)` receives the `N` values of `C` at `c_at`
/// offset `at` (to store, or to add to what is there).
#[inline(always)]
pub fn panel_product<L: Lanes, const MR: usize, const NV: usize>(
    a_panels: &[f32],
    dims: (usize, usize, usize),
    b: &[f32],
    b_at: Layout,
    c_at: Layout,
    put: impl FnMut(usize, L::V),
) {
    // One loop nest per layout of B: matched inside the reduction, the layout was tested
    // at every step.
    match b_at {
        Layout::Rows(ld) => {
            let rows = || (0..).step_by(ld);
            product_over::<L, MR, NV, _>(a_panels, dims, b, b_at, rows, c_at, put)
        }
        Layout::Patches(_, row) => {
            let rows = || row.iter().copied();
            product_over::<L, MR, NV, _>(a_panels, dims, b, b_at, rows, c_at, put)
        }
    }
}

/// [`panel_product`] with `B`'s row starts `rows()`, in reduction order.
#[inline(always)]
fn product_over<L: Lanes, const MR: usize, const NV: usize, I: Iterator<Item = usize>>(
    a_panels: &[f32],
    (m, depth, n): (usize, usize, usize),
    b: &[f32],
    b_at: Layout,
    rows: impl Fn() -> I,
    c_at: Layout,
    mut put: impl FnMut(usize, L::V),
) {
    const { assert!(MR == L::MR) };
    let n_lanes = L::N;
    for j in (0..n).step_by(NV * n_lanes) {
        // A last tile with fewer valid vectors repeats the last one rather than read past
        // the end. (Column offsets outside the row loop: `col` divides.)
        let column = |v: usize| (j + v * n_lanes).min(n - n_lanes);
        let b_base: [usize; NV] = std::array::from_fn(|v| b_at.col(column(v)));
        let c_base: [usize; NV] = std::array::from_fn(|v| c_at.col(column(v)));
        for (ib, panel) in a_panels.chunks_exact(depth * MR).enumerate() {
            let acc = panel_tile::<L, MR, NV>(panel, b, rows(), b_base);
            for (i, vectors) in acc.iter().enumerate() {
                for (v, &vector) in vectors.iter().enumerate() {
                    let (row, col) = (ib * MR + i, j + v * n_lanes);
                    if row < m && col < n {
                        put(c_at.row(row) + c_base[v], vector);
                    }
                }
            }
        }
    }
}

/// One `WR x WV` tile of `dW` over the output rows `runs`, added into `out`: for a row
/// starting at `(x0, g0)` and `t < len`, the scalars are `dy_t[g0 + t*ld + cb..][..WR]`
/// and vector `v` is `images[x0 + t*step + off[v]..][..N]`. Each level compiles it out
/// of line (see `isa.rs`): inlined into the loops around it, LLVM spilled the
/// accumulators.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn weight_tile<L: Lanes, const WR: usize, const WV: usize>(
    runs: &[(usize, usize)],
    len: usize,
    images: &[f32],
    step: usize,
    off: &[usize],
    dy_t: &[f32],
    ld: usize,
    cb: usize,
    out: &mut [f32],
) {
    const { assert!(WR == L::WR && WV == L::WV) };
    let off: [usize; WV] = off.try_into().expect("WV offsets");
    let mut reach = 0;
    for o in off {
        reach = reach.max(o + L::N);
    }
    let mut sum = [[L::zero(); WV]; WR];
    for (i, row) in sum.iter_mut().enumerate() {
        for (v, acc) in row.iter_mut().enumerate() {
            *acc = L::load(out, (i * WV + v) * L::N);
        }
    }
    for &(x0, g0) in runs {
        if len == 0 {
            continue;
        }
        // Bounds checked once per run (see `panel_tile`): its last step's loads end at
        // these.
        assert!(
            x0 + (len - 1) * step + reach <= images.len(),
            "image run in bounds"
        );
        assert!(
            g0 + (len - 1) * ld + cb + WR <= dy_t.len(),
            "dy^T run in bounds"
        );
        for t in 0..len {
            let mut bv = [L::zero(); WV];
            for (v, o) in bv.iter_mut().zip(off) {
                // SAFETY: `x0 + t*step + o + N <= x0 + (len-1)*step + reach`, checked above.
                *v = unsafe { L::load_ptr(images.as_ptr().add(x0 + t * step + o)) };
            }
            // SAFETY: `g0 + t*ld + cb + WR <= dy_t.len()`, checked above.
            let a = unsafe { &*dy_t.as_ptr().add(g0 + t * ld + cb).cast::<[f32; WR]>() };
            fma_step::<L, WR, WV>(&mut sum, a, &bv);
        }
    }
    for (i, row) in sum.iter().enumerate() {
        for (v, &vector) in row.iter().enumerate() {
            L::store(out, (i * WV + v) * L::N, vector);
        }
    }
}
