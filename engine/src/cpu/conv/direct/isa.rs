//! The [`Lanes`] of each dispatch level: AVX-512 (16 lanes), AVX2+FMA (8 lanes) and a
//! portable 4-lane array that LLVM maps onto one SSE or NEON register.
//!
//! Tile shapes, from the register files. AVX-512 has 32 vector registers, so the forward
//! tile is 8 rows x 2 vectors (16 accumulators) and the weight tile 8 x 3 (24). AVX2 has
//! 16, and a broadcast needs a register of its own (AVX-512 can fold it into the
//! multiply-add), so a 12-accumulator tile fits only with 3 more registers live:
//! 6 x 2 forward (2 loaded vectors, one broadcast; 8 loads per 12 multiply-adds) and
//! 2 x 6 weight tile (2 broadcasts, one loaded vector at a time, see `tile::fma_step`).
//! The 4 x 3 tile both had before needs 12 + 3 + 1: `objdump` showed an accumulator
//! stored and reloaded every step. The forward ran 4 x 2 for a while (the docs said
//! 6 x 2): 8 accumulators are just the 2 FMA ports x 4 cycles of latency, with no slack;
//! 6 x 2 (`objdump`: no spill in the loop) measured 1.14x and 1.5x on the stride-2
//! forwards (best sample of 3 interleaved runs each; 6 rows leave 2 of 18 rows idle on
//! 16 channels). A 4 x 3 AVX2 tile that fits by reading its `B` vectors as the
//! multiply-adds' memory operands (volatile loads, so LLVM neither merges them into
//! registers nor spills; `objdump`: 4 broadcasts + 12 `vfmadd231ps mem` per step, no
//! idle rows at 16 or 32 channels) measured slower: 17 of 21 interleaved old/new pairs
//! lost on the loaded host; best sample, ms, 4 x 3 vs 6 x 2: 16→32 s2 fwd 4.72 vs 6.92
//! (its one win), dx 5.70 vs 4.93; 32→64 s2 fwd 5.38 vs 3.87, dx 6.32 vs 4.24; 16@32²
//! fwd 11.59 vs 6.75, dx 8.88 vs 7.36 (`conv_kernels`, `winograd_vs_direct`). Likely
//! the load ports: 16 loads a step, many split across cache lines, on 3 ports, against
//! 12 FMAs on 2.
//! The portable level keeps 4 x 3: nothing here measures it.
//!
//! The products are compiled out of line, each with its level's features (inlined into
//! the loops around them, LLVM spilled the accumulators).
use super::lanes::{Lanes, Slot, MAX_LANES};
use super::tile::{self, Layout};
use crate::cpu::simd::Level;

/// The same `panel_product` and `weight_tile` for every level, with its tile shape and
/// the target features it is compiled with (none for the portable level).
macro_rules! products {
    ($lanes:ty, ($mr:literal, $nv:literal), ($wr:literal, $wv:literal) $(, $features:literal)?) => {
        fn panel_product(
            a_panels: &[f32],
            dims: (usize, usize, usize),
            b: &[f32],
            b_at: Layout,
            c_at: Layout,
            put: impl FnMut(usize, Self::V),
        ) {
            $(#[target_feature(enable = $features)])?
            #[inline]
            unsafe fn product(
                a_panels: &[f32],
                dims: (usize, usize, usize),
                b: &[f32],
                b_at: Layout,
                c_at: Layout,
                put: impl FnMut(usize, <$lanes as Lanes>::V),
            ) {
                tile::panel_product::<$lanes, $mr, $nv>(a_panels, dims, b, b_at, c_at, put)
            }
            // SAFETY: only called from code that runs under `Lanes::run`, whose caller
            // checked that the CPU has this level.
            unsafe { product(a_panels, dims, b, b_at, c_at, put) }
        }

        fn weight_tile(
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
            #[allow(clippy::too_many_arguments)]
            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn weight(
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
                tile::weight_tile::<$lanes, $wr, $wv>(runs, len, images, step, off, dy_t, ld, cb, out)
            }
            // SAFETY: as for `panel_product`.
            unsafe { weight(runs, len, images, step, off, dy_t, ld, cb, out) }
        }
    };
}

/// Four f32 in a plain array: one SSE or NEON register once LLVM vectorises the loops.
#[derive(Clone, Copy)]
pub struct Portable;

impl Lanes for Portable {
    const N: usize = 4;
    const MR: usize = 4;
    const WR: usize = 4;
    const WV: usize = 3;
    // Not measured (the portable level's weight grad takes im2col); chunked, so that the
    // tests cover the chunked loop at a third tile shape.
    const DW_ROW_CHUNKS: bool = true;
    type V = [f32; 4];
    const LEVEL: Level = Level::Portable;

    #[inline(always)]
    unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    #[inline(always)]
    fn zero() -> Self::V {
        [0.0; 4]
    }
    #[inline(always)]
    fn splat(x: f32) -> Self::V {
        [x; 4]
    }
    /// Separate multiply and add: `f32::mul_add` without hardware FMA is a libm call.
    #[inline(always)]
    fn mul_add(a: Self::V, b: Self::V, acc: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l] * b[l] + acc[l])
    }
    #[inline(always)]
    fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l] + b[l])
    }
    #[inline(always)]
    fn max(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l].max(b[l]))
    }
    #[inline(always)]
    fn load(s: &[f32], at: usize) -> Self::V {
        s[at..at + 4].try_into().expect("4 floats")
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self::V {
        // SAFETY: the caller guarantees 4 readable floats.
        unsafe { p.cast::<[f32; 4]>().read_unaligned() }
    }
    #[inline(always)]
    fn store<S: Slot>(d: &mut [S], at: usize, v: Self::V) {
        Self::store_first(d, at, 4, v)
    }
    #[inline(always)]
    fn load_first(s: &[f32], at: usize, count: usize) -> Self::V {
        let mut v = [0.0; 4];
        let n = count.min(4);
        v[..n].copy_from_slice(&s[at..at + n]);
        v
    }
    #[inline(always)]
    fn store_first<S: Slot>(d: &mut [S], at: usize, count: usize, v: Self::V) {
        let lanes = &mut d[at..at + count.min(4)];
        // SAFETY: `lanes` holds that many slots, each laid out as an f32.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), lanes.as_mut_ptr().cast(), lanes.len()) }
    }
    products!(Portable, (4, 3), (4, 3));
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86;
