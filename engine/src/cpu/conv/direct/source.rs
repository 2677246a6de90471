//! [`Source`]: the copy of an input image that the forward product reads in place of an
//! im2col matrix (and whose gradient the strided input grad accumulates).
use super::lanes::{copy, merge2, merge_phases, split2, split_phases, Lanes, MAX_LANES};
use crate::backend::Conv2dParams;
use crate::cpu::conv::valid_range;

/// A copy of one image laid out so that entry `(k, p)` of its `K x P` patch matrix is
/// `copy[row[k] + col(p)]`, `N` consecutive `p` (from a multiple of `N`, the lanes of a
/// vector) being `N` consecutive floats. Output `(oy, ox)` reads padded pixel `(sh*oy + ky, sw*ox + kx)`.
///
/// Each input channel becomes planes of `rows x pitch` floats:
/// - when the output width is a multiple of `N`, the `sh x sw` stride phases of the padded
///   channel: phase `(py, px)` holds padded pixels `(sh*i + py, sw*j + px)`, so tap
///   `(ky, kx)` reads phase `(ky % sh, kx % sw)` at `(oy + ky/sh, ox + kx/sw)`, consecutive
///   in `ox` (for stride 1 this is just the padded channel);
/// - otherwise `kw x sh` shifted rows: plane `(kx, py)` row `i` holds padded pixels
///   `(sh*i + py, sw*ox + kx)` for `ox < w_out`, and `pitch = w_out` makes consecutive
///   output rows adjacent too (`col(p) = p`).
pub struct Source {
    pub row: Vec<usize>,
    /// `col(p) = (p / w_out) * pitch + p % w_out`.
    w_out: usize,
    pitch: usize,
    /// Floats per image, and per input channel.
    pub len: usize,
    channel_len: usize,
    /// Where input row `iy` of channel 0 starts, before a run's own offset.
    row_start: Vec<usize>,
    /// The runs every input row is stored as (the same for every row).
    runs: Vec<Run>,
    /// Every pixel is stored once (stride phases), each phase of a row in one run.
    once: bool,
    /// For rows of at most `N` pixels, each run as the row's lanes it picks
    /// (`run[t] = row[pick[t]]`): one permute per run instead of a split into phases and
    /// a copy (the split and copies of 8-pixel runs took a third of a forward at 16x16
    /// stride 2).
    picks: Vec<[i32; MAX_LANES]>,
}

/// `len` values of an input row's stride phase `phase`, from its entry `from`, stored
/// contiguously at `at` past the row's start (see [`split_phases`]).
struct Run {
    at: usize,
    phase: usize,
    from: usize,
    len: usize,
}

impl Source {
    pub fn new<L: Lanes>(p: &Conv2dParams) -> Self {
        let ((sh, sw), (ph, pw)) = (p.stride, p.padding);
        let rows = (p.h_in + 2 * ph).div_ceil(sh);
        let phases = p.w_out().is_multiple_of(L::N);
        let pitch = if phases {
            (p.w_in + 2 * pw).div_ceil(sw)
        } else {
            p.w_out()
        };
        let plane_len = rows * pitch;
        let mut row = Vec::with_capacity(p.c_in * p.kh * p.kw);
        let mut runs = Vec::new();
        let channel_len;
        if phases {
            channel_len = sh * sw * plane_len;
            for ci in 0..p.c_in {
                for ky in 0..p.kh {
                    row.extend((0..p.kw).map(|kx| {
                        let plane = (ky % sh) * sw + kx % sw;
                        ci * channel_len + plane * plane_len + (ky / sh) * pitch + kx / sw
                    }));
                }
            }
            // Pixel j*sw + r of a row sits at padded column j*sw + r + pw.
            for r in 0..sw.min(p.w_in) {
                let at = ((r + pw) % sw) * plane_len + (r + pw) / sw;
                runs.push(Run {
                    at,
                    phase: r,
                    from: 0,
                    len: (p.w_in - r).div_ceil(sw),
                });
            }
        } else {
            channel_len = p.kw * sh * plane_len;
            for ci in 0..p.c_in {
                for ky in 0..p.kh {
                    row.extend((0..p.kw).map(|kx| {
                        let plane = kx * sh + ky % sh;
                        ci * channel_len + plane * plane_len + (ky / sh) * pitch
                    }));
                }
            }
            // Output column ox of plane kx reads pixel sw*ox + kx - pw.
            for kx in 0..p.kw {
                let (lo, hi) = valid_range(kx, pw, sw, p.w_in, p.w_out());
                if lo < hi {
                    let first = lo * sw + kx - pw;
                    let at = kx * sh * plane_len + lo;
                    runs.push(Run {
                        at,
                        phase: first % sw,
                        from: first / sw,
                        len: hi - lo,
                    });
                }
            }
        }
        let row_start = (0..p.h_in)
            .map(|iy| {
                let (py, qy) = ((iy + ph) % sh, (iy + ph) / sh);
                let plane = if phases { py * sw } else { py };
                plane * plane_len + qy * pitch
            })
            .collect();
        Source {
            row,
            w_out: p.w_out(),
            pitch,
            len: p.c_in * channel_len,
            channel_len,
            row_start,
            picks: if phases || p.w_in > L::N {
                Vec::new()
            } else {
                runs.iter().map(|run| picks(run, p.stride.1)).collect()
            },
            runs,
            once: phases,
        }
    }

    pub fn col(&self, p: usize) -> usize {
        (p / self.w_out) * self.pitch + p % self.w_out
    }

    /// Writes image `x`'s copy into `dst`, whose padding entries must already be zero
    /// (they are never written, so a buffer reused across images stays valid).
    #[inline(always)]
    pub fn fill<L: Lanes>(
        &self,
        x: &[f32],
        p: &Conv2dParams,
        dst: &mut [f32],
        scratch: &mut [f32],
    ) {
        for (ci, channel) in x.chunks_exact(p.h_in * p.w_in).enumerate() {
            for (row, start) in channel.chunks_exact(p.w_in).zip(&self.row_start) {
                let base = ci * self.channel_len + start;
                // Stored once, in at most two phases: split the row straight into place.
                match (self.once, &self.runs[..]) {
                    (true, [r0]) => {
                        copy::<L>(&mut dst[base + r0.at..][..r0.len], row);
                        continue;
                    }
                    (true, [r0, r1]) => {
                        let (even, odd) =
                            two_mut(dst, (base + r0.at, r0.len), (base + r1.at, r1.len));
                        split2::<L>(row, even, odd);
                        continue;
                    }
                    _ => {}
                }
                if !self.picks.is_empty() {
                    let row = L::load_first(row, 0, row.len());
                    for (run, pick) in self.runs.iter().zip(&self.picks) {
                        L::store_first(dst, base + run.at, run.len, L::pick(row, pick));
                    }
                    continue;
                }
                let (phases, len) = match p.stride.1 {
                    1 => (row, p.w_in),
                    sw => {
                        let len = split_phases::<L>(row, sw, scratch);
                        (&scratch[..], len)
                    }
                };
                for run in &self.runs {
                    let at = base + run.at;
                    copy::<L>(
                        &mut dst[at..at + run.len],
                        &phases[run.phase * len + run.from..][..run.len],
                    );
                }
            }
        }
    }

    /// The reverse of [`Source::fill`] for gradients: every image pixel's entries in
    /// `src` (a gradient w.r.t. this copy) summed into `dx` (padding entries dropped).
    #[inline(always)]
    pub fn unfill<L: Lanes>(
        &self,
        src: &[f32],
        p: &Conv2dParams,
        dx: &mut [f32],
        scratch: &mut [f32],
    ) {
        let sw = p.stride.1;
        let len = p.w_in.div_ceil(sw);
        for (ci, channel) in dx.chunks_exact_mut(p.h_in * p.w_in).enumerate() {
            for (row, start) in channel.chunks_exact_mut(p.w_in).zip(&self.row_start) {
                let base = ci * self.channel_len + start;
                match (self.once, &self.runs[..]) {
                    (true, [r0]) => {
                        copy::<L>(row, &src[base + r0.at..][..r0.len]);
                        continue;
                    }
                    (true, [r0, r1]) => {
                        merge2::<L, f32>(
                            &src[base + r0.at..][..r0.len],
                            &src[base + r1.at..][..r1.len],
                            row,
                        );
                        continue;
                    }
                    _ => {}
                }
                let phases = &mut scratch[..sw * len];
                phases.fill(0.0);
                for run in &self.runs {
                    let at = base + run.at;
                    let dst = &mut phases[run.phase * len + run.from..][..run.len];
                    for (d, &v) in dst.iter_mut().zip(&src[at..at + run.len]) {
                        *d += v;
                    }
                }
                merge_phases::<L>(phases, len, sw, row);
            }
        }
    }
}

/// The row lanes `run` stores (`row[(from + t)*stride + phase]` for `t < len`, the
/// other lanes 0).
fn picks(run: &Run, stride: usize) -> [i32; MAX_LANES] {
    std::array::from_fn(|t| {
        let lane = if t < run.len {
            (run.from + t) * stride + run.phase
        } else {
            0
        };
        lane as i32
    })
}

/// Two disjoint ranges `(start, len)` of one slice, both mutable.
fn two_mut(
    s: &mut [f32],
    (a, an): (usize, usize),
    (b, bn): (usize, usize),
) -> (&mut [f32], &mut [f32]) {
    if a < b {
        let (lo, hi) = s.split_at_mut(b);
        (&mut lo[a..a + an], &mut hi[..bn])
    } else {
        let (lo, hi) = s.split_at_mut(a);
        (&mut hi[..an], &mut lo[b..b + bn])
    }
}
