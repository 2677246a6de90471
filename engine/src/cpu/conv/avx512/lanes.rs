//! AVX-512 building blocks on f32 slices: bounds-checked vector loads and stores,
//! masked ones for the first lanes, splitting a row into its stride phases and back,
//! and transposing rows.
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// f32 values per 512-bit register.
pub const LANES: usize = 16;

#[target_feature(enable = "avx512f")]
#[inline]
pub fn load(s: &[f32], at: usize) -> __m512 {
    let lanes = &s[at..at + LANES];
    // SAFETY: `lanes` holds 16 floats.
    unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
}

/// A float that vectors are stored into: an `f32`, or a `MaybeUninit<f32>` of an output
/// being written for the first time (zeroing it first would cost a pass over memory).
pub trait Slot: Copy {}
impl Slot for f32 {}
// Same layout as `f32` (`MaybeUninit` is `repr(transparent)`).
impl Slot for MaybeUninit<f32> {}

#[target_feature(enable = "avx512f")]
#[inline]
pub fn store<S: Slot>(d: &mut [S], at: usize, v: __m512) {
    let lanes = &mut d[at..at + LANES];
    // SAFETY: `lanes` holds 16 slots, each laid out as an f32.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr().cast(), v) }
}

/// A mask enabling the first `count` (at most 16) lanes.
#[inline]
fn first_lanes(count: usize) -> __mmask16 {
    ((1u32 << count.min(LANES)) - 1) as __mmask16
}

/// The first `count` (at most 16) values at `s[at..]`, the other lanes zero.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn load_first(s: &[f32], at: usize, count: usize) -> __m512 {
    let lanes = &s[at..at + count.min(LANES)];
    // SAFETY: the mask enables exactly the lanes of `lanes`.
    unsafe { _mm512_maskz_loadu_ps(first_lanes(lanes.len()), lanes.as_ptr()) }
}

/// Stores the first `count` (at most 16) lanes of `v` at `d[at..]`.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn store_first<S: Slot>(d: &mut [S], at: usize, count: usize, v: __m512) {
    let lanes = &mut d[at..at + count.min(LANES)];
    // SAFETY: the mask enables exactly the lanes of `lanes`, each laid out as an f32.
    unsafe { _mm512_mask_storeu_ps(lanes.as_mut_ptr().cast(), first_lanes(lanes.len()), v) }
}

/// `dst.copy_from_slice(src)` 16 lanes at a time, the last ones masked. For the short
/// rows of a small image (8 to 32 floats) a call to memcpy costs more than the copy.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn copy(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    for start in (0..dst.len()).step_by(LANES) {
        let n = (dst.len() - start).min(LANES);
        store_first(dst, start, n, load_first(src, start, n));
    }
}

/// Lane indices (into two concatenated vectors) of the even values, of the odd ones,
/// and of the two vectors' first (then second) halves interleaved.
const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
const ZIP_LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
const ZIP_HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

#[target_feature(enable = "avx512f")]
#[inline]
pub fn lane_index(i: [i32; 16]) -> __m512i {
    // SAFETY: `i` is 64 readable bytes.
    unsafe { _mm512_loadu_si512(i.as_ptr().cast()) }
}

/// `out[t] = v[index[t]]`.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn pick_lanes(v: __m512, index: __m512i) -> __m512 {
    _mm512_permutexvar_ps(index, v)
}

/// Splits a row into its even and odd entries: `even[j] = row[2j]`, `odd[j] = row[2j + 1]`
/// (`even` holds `ceil(n/2)` values, `odd` `floor(n/2)`), two permutes per 32 values.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn split2(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let n = row.len();
    let (pick_even, pick_odd) = (lane_index(EVEN), lane_index(ODD));
    for start in (0..n).step_by(2 * LANES) {
        let m = n - start;
        let a = load_first(row, start, m);
        let b = load_first(row, start + m.min(LANES), m.saturating_sub(LANES));
        store_first(
            even,
            start / 2,
            m.div_ceil(2),
            _mm512_permutex2var_ps(a, pick_even, b),
        );
        store_first(
            odd,
            start / 2,
            m / 2,
            _mm512_permutex2var_ps(a, pick_odd, b),
        );
    }
}

/// The 32 lanes `even[0], odd[0], even[1], odd[1], ...` as two vectors.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn zip(even: __m512, odd: __m512) -> [__m512; 2] {
    let (zip_lo, zip_hi) = (lane_index(ZIP_LO), lane_index(ZIP_HI));
    [
        _mm512_permutex2var_ps(even, zip_lo, odd),
        _mm512_permutex2var_ps(even, zip_hi, odd),
    ]
}

/// The inverse of [`split2`]: `row[2j] = even[j]`, `row[2j + 1] = odd[j]`.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn merge2<S: Slot>(even: &[f32], odd: &[f32], row: &mut [S]) {
    let n = row.len();
    for start in (0..n).step_by(2 * LANES) {
        let m = n - start;
        let e = load_first(even, start / 2, m.div_ceil(2));
        let o = load_first(odd, start / 2, m / 2);
        let [lo, hi] = zip(e, o);
        store_first(row, start, m, lo);
        store_first(row, start + m.min(LANES), m.saturating_sub(LANES), hi);
    }
}

/// Splits a row into its `stride` phases: `phases[r*len + j] = row[j*stride + r]`, with
/// `len = ceil(row.len() / stride)` (returned).
#[target_feature(enable = "avx512f")]
#[inline]
pub fn split_phases(row: &[f32], stride: usize, phases: &mut [f32]) -> usize {
    let len = row.len().div_ceil(stride);
    if stride == 2 {
        let (even, odd) = phases.split_at_mut(len);
        split2(row, even, odd);
    } else {
        for r in 0..stride {
            let dst = phases[r * len..].iter_mut();
            for (d, &v) in dst.zip(row.iter().skip(r).step_by(stride)) {
                *d = v;
            }
        }
    }
    len
}

/// The inverse of [`split_phases`]: `row[j*stride + r] = phases[r*len + j]`.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn merge_phases(phases: &[f32], len: usize, stride: usize, row: &mut [f32]) {
    if stride == 2 {
        let (even, odd) = phases.split_at(len);
        merge2(even, odd, row);
    } else {
        for r in 0..stride {
            let dst = row.iter_mut().skip(r).step_by(stride);
            for (d, &v) in dst.zip(&phases[r * len..]) {
                *d = v;
            }
        }
    }
}

/// `dst[j*ld + i] = src[i*row_stride + j]` for `i < rows`, `j < len`: the first `len`
/// values of `rows` rows, transposed a 16x16 block at a time in registers (masked at the
/// edges). Gathering each column's 16 values instead cost a third of a stride-2 weight
/// gradient: every gather touches 16 cache lines.
#[target_feature(enable = "avx512f")]
#[inline]
pub fn transpose_rows(
    src: &[f32],
    rows: usize,
    len: usize,
    row_stride: usize,
    dst: &mut [f32],
    ld: usize,
) {
    for i0 in (0..rows).step_by(LANES) {
        let block_rows = (rows - i0).min(LANES);
        for j0 in (0..len).step_by(LANES) {
            let block_len = (len - j0).min(LANES);
            let block = std::array::from_fn(|i| {
                if i < block_rows {
                    load_first(src, (i0 + i) * row_stride + j0, block_len)
                } else {
                    _mm512_setzero_ps()
                }
            });
            for (j, &column) in transpose16(block).iter().take(block_len).enumerate() {
                store_first(dst, (j0 + j) * ld + i0, block_rows, column);
            }
        }
    }
}

/// The 16x16 matrix whose rows are `r`, transposed: lane `i` of `out[j]` is lane `j` of
/// `r[i]`. Pairs of rows interleave at 32 then 64 bits (within each 128-bit quarter), then
/// whole quarters move across.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved (low, high halves of each quarter).
    let t: [__m512; 16] = std::array::from_fn(|k| {
        let (a, b) = (r[k & !1], r[k | 1]);
        if k % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // u[4q + c]: rows 4q..4q+4 at column c of each quarter (columns c, c+4, c+8, c+12).
    let u: [__m512; 16] = std::array::from_fn(|k| {
        let (q, c) = (k / 4, k % 4);
        let (a, b) = (t[4 * q + c / 2], t[4 * q + 2 + c / 2]);
        if c % 2 == 0 {
            _mm512_shuffle_ps::<0x44>(a, b)
        } else {
            _mm512_shuffle_ps::<0xEE>(a, b)
        }
    });
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        // Quarters (0, 2) and (1, 3) of two row groups, then of those pairs.
        let v0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
        let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
        out[c + 8] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
        out[c + 4] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[c + 12] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
    }
    out
}
