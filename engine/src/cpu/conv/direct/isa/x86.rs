//! The x86-64 [`Lanes`]: AVX-512 (16 f32 in a zmm register) and AVX2+FMA (8 in a ymm),
//! with their tile shapes (see `isa.rs` for why these shapes).
use super::*;
use std::arch::x86_64::*;

/// 16 f32 in a 512-bit register.
#[derive(Clone, Copy)]
pub struct Avx512;

/// A mask enabling the first `count` (at most 16) lanes.
#[inline(always)]
fn first16(count: usize) -> __mmask16 {
    ((1u32 << count.min(16)) - 1) as __mmask16
}

#[inline(always)]
fn index16(i: &[i32; MAX_LANES]) -> __m512i {
    // SAFETY: `i` is 64 readable bytes (AVX-512 code runs only under `Lanes::run`).
    unsafe { _mm512_loadu_si512(i.as_ptr().cast()) }
}

/// Lane indices (into two concatenated vectors) of the even values, of the odd ones,
/// and of the two vectors' first (then second) halves interleaved.
const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
const ZIP_LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
const ZIP_HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

// SAFETY (every `unsafe` block below): these methods only run inside `Lanes::run`,
// whose caller checked that the CPU has the level; slice accesses are bounds-checked
// first, and masked lanes are never touched.
impl Lanes for Avx512 {
    const N: usize = 16;
    const MR: usize = 8;
    const WR: usize = 8;
    const WV: usize = 3;
    // Chunked, the 8 x 3 tile made 16 calls per group where it made one, each over only
    // 32 steps; 32→64 s2 fwd+bwd measured 0.76x (best of 4 interleaved runs; 64@8² dw
    // gained 1.18x, within what the start-ups cost elsewhere). So: the whole group.
    const DW_ROW_CHUNKS: bool = false;
    type V = __m512;
    const LEVEL: Level = Level::Avx512;

    #[inline(always)]
    unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
        // Straight into the featured trampoline: going through `with_level` would
        // also compile `f` into its featureless fallback arm, with every intrinsic
        // there an out-of-line call.
        crate::cpu::simd::call_avx512(f)
    }
    #[inline(always)]
    fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn mul_add(a: __m512, b: __m512, acc: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, acc) }
    }
    #[inline(always)]
    fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn max(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn load(s: &[f32], at: usize) -> __m512 {
        let lanes = &s[at..at + 16];
        unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    fn store<S: Slot>(d: &mut [S], at: usize, v: __m512) {
        let lanes = &mut d[at..at + 16];
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr().cast(), v) }
    }
    #[inline(always)]
    fn load_first(s: &[f32], at: usize, count: usize) -> __m512 {
        let lanes = &s[at..at + count.min(16)];
        unsafe { _mm512_maskz_loadu_ps(first16(lanes.len()), lanes.as_ptr()) }
    }
    #[inline(always)]
    fn store_first<S: Slot>(d: &mut [S], at: usize, count: usize, v: __m512) {
        let lanes = &mut d[at..at + count.min(16)];
        let mask = first16(lanes.len());
        unsafe { _mm512_mask_storeu_ps(lanes.as_mut_ptr().cast(), mask, v) }
    }
    #[inline(always)]
    fn pick(v: __m512, index: &[i32; MAX_LANES]) -> __m512 {
        unsafe { _mm512_permutexvar_ps(index16(index), v) }
    }
    #[inline(always)]
    fn unzip(a: __m512, b: __m512) -> [__m512; 2] {
        let (even, odd) = (index16(&EVEN), index16(&ODD));
        unsafe {
            [
                _mm512_permutex2var_ps(a, even, b),
                _mm512_permutex2var_ps(a, odd, b),
            ]
        }
    }
    #[inline(always)]
    fn zip(even: __m512, odd: __m512) -> [__m512; 2] {
        let (lo, hi) = (index16(&ZIP_LO), index16(&ZIP_HI));
        unsafe {
            [
                _mm512_permutex2var_ps(even, lo, odd),
                _mm512_permutex2var_ps(even, hi, odd),
            ]
        }
    }
    /// Pairs of rows interleave at 32 then 64 bits (within each 128-bit quarter),
    /// then whole quarters move across.
    #[inline(always)]
    fn transpose(r: &mut [__m512; MAX_LANES]) {
        unsafe {
            // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved (low, high halves of each
            // quarter).
            // Plain loops, not `array::from_fn`: a closure is compiled without this
            // level's features, so its intrinsics would be calls.
            let mut t = [_mm512_setzero_ps(); 16];
            for k in (0..16).step_by(2) {
                t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
                t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
            }
            // u[4q + c]: rows 4q..4q+4 at column c of each quarter (c, c+4, c+8, c+12).
            let mut u = [_mm512_setzero_ps(); 16];
            for q in (0..16).step_by(4) {
                for h in 0..2 {
                    let (a, b) = (t[q + h], t[q + 2 + h]);
                    u[q + 2 * h] = _mm512_shuffle_ps::<0x44>(a, b);
                    u[q + 2 * h + 1] = _mm512_shuffle_ps::<0xEE>(a, b);
                }
            }
            for c in 0..4 {
                // Quarters (0, 2) and (1, 3) of two row groups, then of those pairs.
                let v0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
                let v1 = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
                let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
                let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
                r[c] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
                r[c + 8] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
                r[c + 4] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
                r[c + 12] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
            }
        }
    }
    products!(
        Avx512,
        (8, 2),
        (8, 3),
        "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"
    );
}

/// 8 f32 in a 256-bit register, with FMA.
#[derive(Clone, Copy)]
pub struct Avx2;

/// A mask enabling the first `count` (at most 8) lanes: lane `l` set when `l < count`.
#[inline(always)]
fn first8(count: usize) -> __m256i {
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(count.min(8) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

impl Lanes for Avx2 {
    const N: usize = 8;
    const MR: usize = 6;
    const WR: usize = 2;
    const WV: usize = 6;
    // 64@8² dw 1.33x, 32→64 s2 1.16x, 16→32 s2 even (best of 5 interleaved runs).
    const DW_ROW_CHUNKS: bool = true;
    type V = __m256;
    const LEVEL: Level = Level::Avx2;

    #[inline(always)]
    unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
        // Straight into the featured trampoline: going through `with_level` would
        // also compile `f` into its featureless fallback arm, with every intrinsic
        // there an out-of-line call.
        crate::cpu::simd::call_avx2(f)
    }
    #[inline(always)]
    fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn mul_add(a: __m256, b: __m256, acc: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, acc) }
    }
    #[inline(always)]
    fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn max(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn load(s: &[f32], at: usize) -> __m256 {
        let lanes = &s[at..at + 8];
        unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn store<S: Slot>(d: &mut [S], at: usize, v: __m256) {
        let lanes = &mut d[at..at + 8];
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr().cast(), v) }
    }
    /// Whole vectors by a plain load: AVX2's masked moves cost more than a load (two
    /// micro-ops and the mask's compare on Intel; microcoded, many cycles each, on AMD
    /// Zen 1 and 2), and the transposes between layouts call this with whole vectors
    /// for all but the edges of odd sizes.
    #[inline(always)]
    fn load_first(s: &[f32], at: usize, count: usize) -> __m256 {
        if count >= 8 {
            return Self::load(s, at);
        }
        let lanes = &s[at..at + count];
        unsafe { _mm256_maskload_ps(lanes.as_ptr(), first8(lanes.len())) }
    }
    /// Whole vectors by a plain store, as in [`Lanes::load_first`].
    #[inline(always)]
    fn store_first<S: Slot>(d: &mut [S], at: usize, count: usize, v: __m256) {
        if count >= 8 {
            return Self::store(d, at, v);
        }
        let lanes = &mut d[at..at + count];
        let mask = first8(lanes.len());
        unsafe { _mm256_maskstore_ps(lanes.as_mut_ptr().cast(), mask, v) }
    }
    #[inline(always)]
    fn pick(v: __m256, index: &[i32; MAX_LANES]) -> __m256 {
        unsafe { _mm256_permutevar8x32_ps(v, _mm256_loadu_si256(index.as_ptr().cast())) }
    }
    /// Even (odd) lanes of each 128-bit half, then the 64-bit quarters reordered
    /// `0, 2, 1, 3` so that `a`'s come first.
    #[inline(always)]
    fn unzip(a: __m256, b: __m256) -> [__m256; 2] {
        unsafe {
            let even = _mm256_castps_pd(_mm256_shuffle_ps::<0x88>(a, b));
            let odd = _mm256_castps_pd(_mm256_shuffle_ps::<0xDD>(a, b));
            [
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(even)),
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(odd)),
            ]
        }
    }
    #[inline(always)]
    fn zip(even: __m256, odd: __m256) -> [__m256; 2] {
        unsafe {
            let (lo, hi) = (_mm256_unpacklo_ps(even, odd), _mm256_unpackhi_ps(even, odd));
            [
                _mm256_permute2f128_ps::<0x20>(lo, hi),
                _mm256_permute2f128_ps::<0x31>(lo, hi),
            ]
        }
    }
    /// Rows interleave at 32 bits, then 64, then the 128-bit halves swap across.
    #[inline(always)]
    fn transpose(r: &mut [__m256; MAX_LANES]) {
        unsafe {
            // Plain loops, not `array::from_fn`: a closure is compiled without this
            // level's features, so its intrinsics would be calls.
            let mut t = [_mm256_setzero_ps(); 8];
            for k in (0..8).step_by(2) {
                t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
                t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
            }
            // u[4q + c]: rows 4q..4q+4 at column c (and c + 4) of each half.
            let mut u = [_mm256_setzero_ps(); 8];
            for q in (0..8).step_by(4) {
                for h in 0..2 {
                    let (a, b) = (t[q + h], t[q + 2 + h]);
                    u[q + 2 * h] = _mm256_shuffle_ps::<0x44>(a, b);
                    u[q + 2 * h + 1] = _mm256_shuffle_ps::<0xEE>(a, b);
                }
            }
            for c in 0..4 {
                r[c] = _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c]);
                r[c + 4] = _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c]);
            }
        }
    }
    products!(Avx2, (6, 2), (2, 6), "avx2,fma");
}
