//! The special-case kernels (`tile.rs`, `plain.rs`) against the general row kernel, which
//! the fused-vs-composed tests check against the engine's primitives, at every SIMD level
//! this CPU supports; and each level's row kernel against the portable one's.
use super::tile::MAX_COLS;
use super::{Consts, Kernel, MaybeUninit, Shift, Task};
use crate::backend::FusedLossParams;
use crate::cpu::simd::{with_level_fma, Level, SimdFloat};
use crate::gradcheck::SplitMix;

/// One kernel on all rows, compiled for `level`: `(losses, gradient)`, or the reported
/// bad logit.
fn run<T: SimdFloat>(
    level: Level,
    kernel: Kernel,
    z: &[T],
    p: &FusedLossParams,
) -> Result<(Vec<T>, Vec<T>), (usize, usize)> {
    let k = Consts::new(p, kernel);
    let mut g = vec![MaybeUninit::uninit(); p.rows * p.cols];
    let mut l = vec![T::ZERO; p.rows];
    let task = Task {
        kernel,
        z,
        dense: None,
        k: &k,
        r0: 0,
        g: &mut g,
        l: &mut l,
    };
    let bad = with_level_fma(level, task);
    match bad {
        Some(at) => Err(at),
        // SAFETY: without a reported problem every row wrote all its entries.
        None => Ok((
            l,
            g.into_iter().map(|v| unsafe { v.assume_init() }).collect(),
        )),
    }
}

/// Within `rel` of the largest entry, or of `floor` if that is larger (a lone loss can
/// be 0 in one kernel and an f32 rounding of `u` in the other).
fn close(what: &str, a: &[f64], b: &[f64], rel: f64, floor: f64) {
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rel * scale,
            "{what}[{i}]: {x:e}, row kernel {y:e}"
        );
    }
}

fn params<'a>(
    rows: usize,
    cols: usize,
    labels: &'a [usize],
    coefs: &'a [f64],
    offsets: &'a [f64],
) -> FusedLossParams<'a> {
    FusedLossParams {
        rows,
        cols,
        labels,
        coefs,
        per_row: 1,
        offsets,
        margins: &[],
        weights: &[],
        scale: 1.0,
        clamp: Some(30.0),
        gamma: 0.0,
        smoothing: 0.0,
        grad_scale: 1.0 / rows as f64,
    }
}

/// `kernel` against the row kernel at each shape and level, and each level's row kernel
/// against the portable one: partial last tiles and groups, one and two classes, logits
/// beyond the clamp, weighted rows and a mean's scale; each with a dropped class (`-inf`
/// offset) and with none (the shifted sweep's two loops).
fn agree<T: SimdFloat>(kernel: Kernel, shapes: &[(usize, usize)], rel: f64) {
    agree_with::<T>(kernel, shapes, rel, |_| ());
}

/// [`agree`] with the parameters changed by `adjust` (the clamp, the scale).
fn agree_with<T: SimdFloat>(
    kernel: Kernel,
    shapes: &[(usize, usize)],
    rel: f64,
    adjust: fn(&mut FusedLossParams),
) {
    for level in Level::supported() {
        agree_at::<T>(level, kernel, shapes, rel, adjust);
    }
}

fn agree_at<T: SimdFloat>(
    level: Level,
    kernel: Kernel,
    shapes: &[(usize, usize)],
    rel: f64,
    adjust: fn(&mut FusedLossParams),
) {
    let mut rng = SplitMix::new(11);
    for (&(rows, cols), drop) in shapes.iter().flat_map(|s| [(s, true), (s, false)]) {
        let z: Vec<T> = rng
            .vec(rows * cols, -40.0, 40.0)
            .into_iter()
            .map(T::from_f64)
            .collect();
        let labels: Vec<usize> = (0..rows).map(|i| (i * 7 + 3) % cols).collect();
        let coefs = rng.vec(rows, 0.5, 2.0);
        let mut offsets = rng.vec(cols, -2.0, 3.0);
        if let Some(free) = (0..cols).find(|c| drop && !labels.contains(c)) {
            offsets[free] = f64::NEG_INFINITY;
        }
        let mut p = params(rows, cols, &labels, &coefs, &offsets);
        adjust(&mut p);
        assert!(p.is_plain_hard());
        let (lk, gk) = run(level, kernel, &z, &p).unwrap();
        let (lr, gr) = run(level, Kernel::Rows, &z, &p).unwrap();
        let (lp, gp) = run(Level::Portable, Kernel::Rows, &z, &p).unwrap();
        let f = |v: Vec<T>| v.into_iter().map(T::to_f64).collect::<Vec<_>>();
        eprintln!("level {level}, {rows} x {cols}, drop {drop}");
        close("loss", &f(lk), &f(lr.clone()), rel, 1.0);
        close("grad", &f(gk), &f(gr.clone()), rel, 1e-30);
        close("row-kernel loss vs portable", &f(lr), &f(lp), rel, 1.0);
        close("row-kernel grad vs portable", &f(gr), &f(gp), rel, 1e-30);
    }
}

const TILE_SHAPES: [(usize, usize); 5] = [(1, 1), (3, 2), (16, 10), (37, 7), (50, MAX_COLS)];
/// The last two rows are several blocks long (`plain::BLOCK`), the last block partial.
const PLAIN_SHAPES: [(usize, usize); 6] = [
    (1, 3),
    (17, 57),
    (37, 100),
    (33, 1000),
    (3, 2048),
    (18, 2500),
];

#[test]
fn tiles_agree_with_the_row_kernel() {
    agree::<f64>(Kernel::Tiles, &TILE_SHAPES, 1e-13);
    agree::<f32>(Kernel::Tiles, &TILE_SHAPES, 1e-6);
}

fn keep(_: &mut FusedLossParams) {}
fn no_clamp(p: &mut FusedLossParams) {
    p.clamp = None;
}
/// `2 * 3 * 30 + 5 = 185`: wider than `MAX_SPAN`.
fn too_wide(p: &mut FusedLossParams) {
    p.scale = 3.0;
}

/// With `params`' clamp (30, scale 1, offsets in `[-2, 3]`) the plain rows run against
/// the clamp's midpoint (`Shift`); without a clamp or with too wide a range, against each
/// row's maximum.
#[test]
fn plain_rows_agree_with_the_row_kernel() {
    let offsets = [-2.0, 0.0, 3.0];
    for (adjust, shifted) in [
        (keep as fn(&mut FusedLossParams), true),
        (no_clamp, false),
        (too_wide, false),
    ] {
        let mut p = params(1, 3, &[0], &[1.0], &offsets);
        adjust(&mut p);
        assert_eq!(Shift::<f32>::new(&p).is_some(), shifted);
        agree_with::<f64>(Kernel::Plain, &PLAIN_SHAPES, 1e-13, adjust);
        agree_with::<f32>(Kernel::Plain, &PLAIN_SHAPES, 1e-6, adjust);
    }
}

/// When the clamp's range is the shift and when it is not: only finite offsets count, and
/// every class dropped or a NaN or `+inf` offset leaves the row maximum.
#[test]
fn the_shift_is_the_midpoint_of_the_clamped_range() {
    let at = |offsets: &[f64]| Shift::<f64>::new(&params(1, 3, &[0], &[1.0], offsets));
    let s = at(&[-2.0, f64::NEG_INFINITY, 4.0]).unwrap();
    assert_eq!(s.mid, 1.0);
    assert_eq!(s.offsets, vec![-3.0, f64::NEG_INFINITY, 3.0]);
    let none = at(&[]).unwrap();
    assert_eq!((none.mid, none.offsets), (0.0, vec![0.0; 3]));
    // 60 + 68 = 128 is the widest span taken.
    assert!(at(&[0.0, 68.0, 1.0]).is_some() && at(&[0.0, 68.5, 1.0]).is_none());
    assert!(at(&[f64::NEG_INFINITY; 3]).is_none());
    assert!(at(&[0.0, f64::NAN, 1.0]).is_none() && at(&[0.0, f64::INFINITY, 1.0]).is_none());
}

/// `ln_split` against f64's `ln` from the smallest to the largest sum a shift allows.
#[test]
fn split_ln_keeps_f32_digits_across_the_whole_range() {
    let mut worst: f64 = 0.0;
    for i in -1000..=1000 {
        let s = (i as f64 * 0.0731).exp();
        worst = worst.max((super::plain::ln_split::<f32>(s) - s.ln()).abs());
    }
    // The error of `ln f` for `f` in `[1, 2)`: about an f32 ulp of ln 2.
    assert!(worst < 1.2e-7, "{worst:e}");
}

#[test]
fn every_kernel_names_the_first_bad_logit() {
    let (rows, cols) = (21, 5);
    let mut z = vec![0.5f32; rows * cols];
    z[18 * cols + 3] = f32::INFINITY;
    z[19 * cols + 1] = f32::NAN;
    let (labels, coefs) = (vec![0; rows], vec![1.0; rows]);
    let p = params(rows, cols, &labels, &coefs, &[]);
    for level in Level::supported() {
        for kernel in [Kernel::Tiles, Kernel::Plain, Kernel::Rows] {
            assert_eq!(run(level, kernel, &z, &p).unwrap_err(), (18, 3));
        }
    }
}

#[test]
fn long_rows_name_a_bad_logit_in_a_later_block_and_drop_a_leading_block() {
    let (rows, cols) = (3, 2100);
    let mut z: Vec<f32> = (0..rows * cols).map(|i| (i % 13) as f32 - 6.0).collect();
    z[cols + 1500] = f32::NEG_INFINITY;
    let (labels, coefs) = (vec![2000; rows], vec![1.0; rows]);
    let p = params(rows, cols, &labels, &coefs, &[]);
    for level in Level::supported() {
        assert_eq!(run(level, Kernel::Plain, &z, &p).unwrap_err(), (1, 1500));
    }
    // Every class of the first block dropped: its `exp`s are 0, not `exp(-inf + inf)`.
    let z = &z[..cols];
    let mut offsets = vec![0.0; cols];
    offsets[..1024].fill(f64::NEG_INFINITY);
    let p = params(1, cols, &labels[..1], &coefs[..1], &offsets);
    for level in Level::supported() {
        let (l, g) = run(level, Kernel::Plain, z, &p).unwrap();
        let (lr, gr) = run(level, Kernel::Rows, z, &p).unwrap();
        assert!(g[..1024].iter().all(|&v| v == 0.0) && l[0].is_finite());
        let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
        close("loss", &f(l), &f(lr), 1e-6, 1.0);
        close("grad", &f(g), &f(gr), 1e-6, 1e-30);
    }
}

/// The shifted sweep's two loops on rows without a dropped class: the same bits (the
/// bounded `exp` is the clamped one's arithmetic there, and `+ z * 0` is exact), with
/// logits beyond the clamp in every line; and a non-finite logit named from either.
#[test]
fn the_shifted_sweep_loops_agree_bit_for_bit() {
    use super::simd::{MulAdd, MulAddKernel};
    use super::sweeps::{sweep_shifted, Ahead};
    struct Sweep<'a> {
        z: &'a [f32],
        k: &'a Consts<'a, f32>,
        drops: bool,
    }
    impl MulAddKernel for Sweep<'_> {
        type Output = (Result<f32, usize>, Vec<u32>);
        #[inline(always)]
        fn run<M: MulAdd>(self) -> Self::Output {
            let shift = self.k.shift.as_ref().unwrap();
            let mut g = vec![MaybeUninit::uninit(); self.z.len()];
            let ahead = Ahead::after_or_within(self.z, &g, false);
            let s = sweep_shifted::<f32, M>(
                self.z,
                &mut g,
                &shift.offsets,
                self.k.logits(),
                ahead,
                self.drops,
            );
            // SAFETY: the sweep writes every entry.
            (
                s,
                g.iter()
                    .map(|v| unsafe { v.assume_init() }.to_bits())
                    .collect(),
            )
        }
    }
    let mut rng = SplitMix::new(5);
    let cols = 1000;
    let mut z: Vec<f32> = rng
        .vec(cols, -40.0, 40.0)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let offsets = rng.vec(cols, -2.0, 3.0);
    let p = params(1, cols, &[0], &[1.0], &offsets);
    let k = Consts::new(&p, Kernel::Plain);
    assert!(!k.shift.as_ref().unwrap().drops);
    for level in Level::supported() {
        let run = |z: &[f32], drops| with_level_fma(level, Sweep { z, k: &k, drops });
        let (bounded, clamped) = (run(&z, false), run(&z, true));
        assert!(bounded.0.is_ok() && z.iter().any(|v| v.abs() > 30.0));
        assert_eq!(
            bounded.0.map(f32::to_bits),
            clamped.0.map(f32::to_bits),
            "{level}"
        );
        assert_eq!(bounded.1, clamped.1, "{level}");
        for (at, bad) in [
            (3, f32::INFINITY),
            (997, f32::NEG_INFINITY),
            (500, f32::NAN),
        ] {
            let keep = std::mem::replace(&mut z[at], bad);
            assert_eq!(run(&z, false).0, Err(at), "{level} {bad}");
            assert_eq!(run(&z, true).0, Err(at), "{level} {bad}");
            z[at] = keep;
        }
    }
}

/// The chunked search for a non-finite logit against a plain `position`, with bad values
/// at chunk edges, in the last partial chunk, several per slice and none.
#[test]
fn the_chunked_search_finds_the_first_non_finite_logit() {
    use super::sweeps::first_non_finite;
    let mut rng = SplitMix::new(11);
    for len in [0, 1, 63, 64, 65, 127, 128, 200, 1000] {
        let base: Vec<f32> = rng
            .vec(len, -40.0, 40.0)
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(first_non_finite(&base), None, "len {len}");
        let spots = [0, 63, 64, 65, 127, 128, len / 2, len.saturating_sub(1)];
        for (i, &a) in spots.iter().enumerate().filter(|&(_, &a)| a < len) {
            for &b in &spots[i..] {
                let mut z = base.clone();
                z[a] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][a % 3];
                if b < len {
                    z[b] = f32::NAN;
                }
                let want = z.iter().position(|v| !v.is_finite());
                assert_eq!(first_non_finite(&z), want, "len {len}, bad at {a} and {b}");
            }
        }
    }
}
