//! Winograd's F(2x2, 3x3) for the stride-1, pad-1 3x3 convolutions that make up most of
//! ResNet-32: each 2x2 block of outputs ("tile") costs 16 multiplies per input-output
//! channel pair instead of the direct kernel's 36 (2.25x fewer), paid for with three
//! linear transforms (`transform.rs`) that are adds and subtracts only.
//!
//! Per image (one rayon task each, as in [`super::direct`]):
//! 1. the image is copied channels-last and zero-padded (`[h + 2][w + 2][c]`, `c` a
//!    multiple of `N`; odd sizes pad one row/column more, so every tile is whole);
//! 2. per block of tiles: each tile's 4x4 input patch becomes `V = B^T d B`, 16 elements
//!    of `c_in` channels (stored `[element][tile][channel]`); then for each element `e`,
//!    `M[e] = V[e] U[e]` over the block (`product.rs`, `U[e]`: element `e` of every
//!    transformed kernel, `c_in x c_out`); then each tile's `A^T M A` is its 2x2
//!    outputs, channels-last, with the bias and ReLU of the eval fold when asked;
//! 3. the channels-last output is transposed into NCHW.
//!
//! The input gradient of such a conv is the same forward on `dy`, with the kernel rotated
//! by 180 degrees and its channel axes swapped (padding `3 - 1 - 1 = 1` again). The
//! weight gradient runs the transforms backwards over the same `V` (`weight.rs`).
//!
//! Accuracy: the transforms' constants are 0, ±½ and ±1, so F(2x2, 3x3) loses little: its
//! rounding error is bounded by about `(c_in + 9) u` times the sum of the magnitudes it
//! adds, which is at most `64 c_in max|w| max|x|` (the direct sum's is `9 c_in max|w|
//! max|x|`); `tests.rs` checks against that bound.
//!
//! F(4x4, 3x3) (`transform4.rs`) runs the same steps on 6x6 input patches and 4x4 output
//! tiles: 36 multiplies per 16 outputs instead of 64, for transforms that cost about as
//! much per output, and constants up to 8, so a rounding bound 36 times F(2x2, 3x3)'s.
//! Both share this driver through [`Tiling`]; `dispatch.rs` says which runs where.
mod layout;
mod product;
mod transform;
mod transform4;
mod weight;

use super::direct::{Epilogue, Lanes};
use super::kept;
use super::per_image;
use crate::backend::Conv2dParams;
use layout::transpose;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
pub use weight::conv2d_weight_grad;

/// One of Winograd's tilings of a 3x3 convolution: its tile size and its three maps.
/// [`F2`] is F(2x2, 3x3) (`transform.rs`), [`F4`] F(4x4, 3x3) (`transform4.rs`); the
/// forward, input gradient and weight gradient take either (see `dispatch.rs` for which
/// runs where).
pub trait Tiling {
    /// Output pixels along each side of a tile; its input patch is `OUT + 2` across.
    const OUT: usize;
    /// Elements of a transformed tile, `(OUT + 2)^2`: one product `V[e] U[e]` each.
    const ELEMENTS: usize;
    /// `U = G g G^T` of a row-major 3x3 kernel into `u` (`ELEMENTS` values).
    fn kernel(g: &[f32], u: &mut [f32]);
    /// `V = B^T d B` of one tile's `N` channels (see `transform::input`).
    fn input<L: Lanes>(
        src: &[f32],
        from: (usize, usize),
        dst: &mut [f32],
        out: (usize, usize),
        c: usize,
    );
    /// `A^T M A` of one tile's `N` channels, with the epilogue (see `transform::output`).
    fn output<L: Lanes>(
        src: (&[f32], usize, usize),
        dst: &mut [f32],
        out: (usize, usize),
        channels: usize,
        then: (L::V, bool),
    );
    /// `dM = A dy A^T` of one output-gradient tile's `N` channels (the weight gradient's;
    /// see `transform::output_grad`).
    fn output_grad<L: Lanes>(
        src: &[f32],
        from: (usize, usize),
        dst: &mut [f32],
        out: (usize, usize),
        c: usize,
    );
    /// `G^T dU G` of one channel pair's `dU` (`ELEMENTS` values): its 3x3 kernel gradient.
    fn kernel_grad(du: &[f32]) -> [f32; 9];
}

/// A [`Tiling`] whose maps are the functions of one module (`transform`, `transform4`),
/// which have the trait's signatures.
macro_rules! tiling {
    ($(#[$doc:meta])* $name:ident, $maps:ident, $out:literal) => {
        $(#[$doc])*
        pub struct $name;
        impl Tiling for $name {
            const OUT: usize = $out;
            const ELEMENTS: usize = $maps::ELEMENTS;
            fn kernel(g: &[f32], u: &mut [f32]) {
                u.copy_from_slice(&$maps::kernel(g));
            }
            #[inline(always)]
            fn input<L: Lanes>(
                src: &[f32],
                from: (usize, usize),
                dst: &mut [f32],
                out: (usize, usize),
                c: usize,
            ) {
                $maps::input::<L>(src, from, dst, out, c)
            }
            #[inline(always)]
            fn output<L: Lanes>(
                src: (&[f32], usize, usize),
                dst: &mut [f32],
                out: (usize, usize),
                channels: usize,
                then: (L::V, bool),
            ) {
                $maps::output::<L>(src, dst, out, channels, then)
            }
            #[inline(always)]
            fn output_grad<L: Lanes>(
                src: &[f32],
                from: (usize, usize),
                dst: &mut [f32],
                out: (usize, usize),
                c: usize,
            ) {
                $maps::output_grad::<L>(src, from, dst, out, c)
            }
            fn kernel_grad(du: &[f32]) -> [f32; 9] {
                $maps::kernel_grad(du)
            }
        }
    };
}

tiling!(
    /// F(2x2, 3x3): 16 multiplies per 4 outputs and channel pair.
    F2, transform, 2
);
tiling!(
    /// F(4x4, 3x3): 36 multiplies per 16 outputs and channel pair.
    F4, transform4, 4
);

/// Floats of one block's transformed input `V` (elements x tiles x channels): 64 KB,
/// so that `V`, the `M` it becomes and one `U[e]` stay in L1/L2 between the passes.
const BLOCK_FLOATS: usize = 16 * 1024;

/// Whether the geometry is one Winograd (either tiling) computes: 3x3, stride 1, padding 1.
pub fn takes(p: &Conv2dParams) -> bool {
    p.kh == 3 && p.kw == 3 && p.stride == (1, 1) && p.padding == (1, 1)
}

/// Sizes of one image's buffers, for a tiling of `out x out` output pixels per tile.
#[derive(Clone, Copy, PartialEq)]
struct Geometry {
    /// Tiles down and across: `ceil(h / out)`, `ceil(w / out)`.
    tiles: (usize, usize),
    /// Output pixels along a tile's side ([`Tiling::OUT`]) and its elements.
    out: usize,
    elements: usize,
    /// Pixels across the padded copy (`out * tiles.1 + 2`).
    pitch: usize,
    /// Input and output channels rounded up to whole vectors.
    c_in: usize,
    c_out: usize,
    /// Tiles per block: a multiple of `rows`, the product's register tile rows.
    block: usize,
    rows: usize,
}

impl Geometry {
    fn of<L: Lanes, F: Tiling>(p: &Conv2dParams) -> Self {
        let (c_in, c_out) = (
            p.c_in.next_multiple_of(L::N),
            p.c_out.next_multiple_of(L::N),
        );
        let out = F::OUT;
        let tiles = (p.h_in.div_ceil(out), p.w_in.div_ceil(out));
        let rows = product::rows_per_tile::<L>(c_out, tiles.0 * tiles.1);
        let block = (BLOCK_FLOATS / (F::ELEMENTS * c_in * rows)).max(1) * rows;
        Geometry {
            tiles,
            rows,
            out,
            elements: F::ELEMENTS,
            pitch: out * p.w_in.div_ceil(out) + 2,
            c_in,
            c_out,
            block,
        }
    }
}

/// Buffers of one task, reused across its images.
struct Buffers {
    /// The padded channels-last image; its border and padding channels stay zero.
    image: Vec<f32>,
    /// One block's `V` and `M`: `[element][tile][channel]`.
    v: Vec<f32>,
    m: Vec<f32>,
    /// The output channels-last, `[out * tiles.0][out * tiles.1][c_out]`.
    out: Vec<f32>,
}

impl Buffers {
    fn new(g: &Geometry) -> Self {
        let (ty, tx) = g.tiles;
        Buffers {
            image: vec![0.0; (g.out * ty + 2) * g.pitch * g.c_in],
            v: vec![0.0; g.elements * g.block * g.c_in],
            m: vec![0.0; g.elements * g.block * g.c_out],
            out: vec![0.0; g.out * g.out * ty * tx * g.c_out],
        }
    }

    /// Buffers for the `role` pass of `p` (of geometry `g`): the ones an earlier task on
    /// this thread left for the same pass and geometry, if any, else new ones
    /// ([`kept`](super::kept) says why, and why that is safe). The zeros these passes
    /// rely on: the image's border and padding channels, and in the weight grad the rows
    /// and columns of `out` past an odd-sized `dy`. The forward writes all of `out` and
    /// the weight grad does not, hence the role in the key.
    fn lend(g: &Geometry, p: &Conv2dParams, role: Role) -> Loan {
        let key = Key {
            role,
            g: *g,
            dims: (p.c_in, p.c_out, p.h_in, p.w_in),
        };
        kept::lend(key, || Buffers::new(g))
    }
}

/// Which pass a [`Loan`] serves: the forward (which the input grad runs too) or the
/// weight grad.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Forward,
    WeightGrad,
}

/// What must match for a task to take over another's [`Buffers`]: the pass, the
/// geometry, and the conv's own sizes (two convs whose sizes round to one geometry
/// leave their zeros in different places).
#[derive(Clone, Copy, PartialEq)]
struct Key {
    role: Role,
    g: Geometry,
    dims: (usize, usize, usize, usize),
}

/// [`Buffers`] on loan to one rayon task.
type Loan = kept::Loan<Key, Buffers>;

/// `U[e][ci][co]`: element `e` of `F`'s transform of `kernel(ci, co)` (a row-major 3x3
/// kernel), padding channels zero.
fn transformed_kernels<F: Tiling>(
    (c_in, c_out): (usize, usize),
    g: &Geometry,
    kernel: impl Fn(usize, usize) -> [f32; 9],
) -> Vec<f32> {
    let mut u = vec![0.0; F::ELEMENTS * g.c_in * g.c_out];
    let mut one = vec![0.0; F::ELEMENTS];
    for ci in 0..c_in {
        for co in 0..c_out {
            F::kernel(&kernel(ci, co), &mut one);
            for (e, &v) in one.iter().enumerate() {
                u[(e * g.c_in + ci) * g.c_out + co] = v;
            }
        }
    }
    u
}

/// Copies the NCHW image `x` into `image`, channels-last inside its zero border.
#[inline(always)]
fn pad_channels_last<L: Lanes>(x: &[f32], p: &Conv2dParams, g: &Geometry, image: &mut [f32]) {
    let (h, w) = (p.h_in, p.w_in);
    for iy in 0..h {
        let at = ((iy + 1) * g.pitch + 1) * g.c_in;
        transpose::<L, f32>(&x[iy * w..], (p.c_in, w, h * w), &mut image[at..], g.c_in);
    }
}

/// One of `transform.rs`'s per-tile maps (`input`, `output_grad`): `(src, (at, row), dst,
/// (out, stride), channels)`. A trait with an associated function, not an `Fn` bound:
/// a function item called through `Fn` goes through a shim compiled without the level's
/// features, where the transform's intrinsics became calls (the AVX2 forward took 3.4x
/// as long at 16@32²).
pub(super) trait TileMap<L: Lanes> {
    fn map(src: &[f32], from: (usize, usize), dst: &mut [f32], out: (usize, usize), c: usize);
}

/// The forward's `V = Bᵀ d B` of an input tile, by tiling `F`.
pub(super) struct InputOf<F>(PhantomData<F>);
impl<L: Lanes, F: Tiling> TileMap<L> for InputOf<F> {
    #[inline(always)]
    fn map(src: &[f32], from: (usize, usize), dst: &mut [f32], out: (usize, usize), c: usize) {
        F::input::<L>(src, from, dst, out, c)
    }
}

/// The weight grad's `dM = A dy Aᵀ` of an output-grad tile, by tiling `F`.
pub(super) struct OutputGradOf<F>(PhantomData<F>);
impl<L: Lanes, F: Tiling> TileMap<L> for OutputGradOf<F> {
    #[inline(always)]
    fn map(src: &[f32], from: (usize, usize), dst: &mut [f32], out: (usize, usize), c: usize) {
        F::output_grad::<L>(src, from, dst, out, c)
    }
}

/// `M::map` of the tiles `first..first + count` (raster order, the tile at pixel
/// `(out ty, out tx)`, `out` the geometry's tile size) of a channels-last `src` (`channels` floats per pixel, `pitch` pixels per
/// row) into rows `row..row + count` of a block `dst`: the forward's `V` of the padded
/// image, the weight grad's `dM` of `dy`. One call per run of tiles, so that the offsets
/// and bounds the loop needs are worked out once per run: called per tile (between the
/// weight gradient's other work) they cost more than the transform itself.
#[inline(always)]
fn tile_transforms<L: Lanes, M: TileMap<L>>(
    g: &Geometry,
    (src, channels, pitch): (&[f32], usize, usize),
    (first, count): (usize, usize),
    dst: &mut [f32],
    row: usize,
) {
    for r in 0..count {
        let tile = first + r;
        let (y, x) = (g.out * (tile / g.tiles.1), g.out * (tile % g.tiles.1));
        let at = (y * pitch + x) * channels;
        for c in (0..channels).step_by(L::N) {
            let (from, out) = (
                (at + c, pitch * channels),
                ((row + r) * channels + c, g.block * channels),
            );
            // ResNet's channel counts as constants: the transform's offsets fold.
            match channels {
                16 => M::map(src, from, dst, out, 16),
                32 => M::map(src, from, dst, out, 32),
                64 => M::map(src, from, dst, out, 64),
                _ => M::map(src, from, dst, out, channels),
            }
        }
    }
}

/// One image by tiling `F`: `x` (`[c_in][h][w]`) to `y` (`[c_out][h][w]`), every value
/// stored, each through `then` (its bias padded to `g.c_out`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_image<L: Lanes, F: Tiling>(
    u: &[f32],
    g: &Geometry,
    p: &Conv2dParams,
    then: &Epilogue,
    x: &[f32],
    bufs: &mut Buffers,
    y: &mut [MaybeUninit<f32>],
) {
    let (h, w, n) = (p.h_in, p.w_in, L::N);
    let (ty, tx) = g.tiles;
    pad_channels_last::<L>(x, p, g, &mut bufs.image);
    let tiles = ty * tx;
    let out_pitch = F::OUT * tx;
    let (c_in, c_out) = (g.c_in, g.c_out);
    for t0 in (0..tiles).step_by(g.block) {
        let count = (tiles - t0).min(g.block);
        let image = (&bufs.image[..], c_in, g.pitch);
        tile_transforms::<L, InputOf<F>>(g, image, (t0, count), &mut bufs.v, 0);
        let rows = count.next_multiple_of(g.rows);
        let dims = (rows, c_in, c_out);
        let blocks = (g.block, F::ELEMENTS, g.rows);
        product::elementwise_products::<L>(&bufs.v, u, &mut bufs.m, dims, blocks);
        for r in 0..count {
            let (oy, ox) = (F::OUT * ((t0 + r) / tx), F::OUT * ((t0 + r) % tx));
            let at = (oy * out_pitch + ox) * c_out;
            for c in (0..c_out).step_by(n) {
                let src = (&bufs.m[..], r * c_out + c, g.block * c_out);
                let (out, dst) = (&mut bufs.out, (at + c, out_pitch * c_out));
                // No `Option::map` here: its closure would miss the level's features.
                let bias = match then.bias {
                    Some(b) => L::load(b, c),
                    None => L::zero(),
                };
                let then = (bias, then.relu);
                match c_out {
                    16 => F::output::<L>(src, out, dst, 16, then),
                    32 => F::output::<L>(src, out, dst, 32, then),
                    64 => F::output::<L>(src, out, dst, 64, then),
                    _ => F::output::<L>(src, out, dst, c_out, then),
                }
            }
        }
    }
    for oy in 0..h {
        let src = &bufs.out[oy * out_pitch * g.c_out..];
        transpose::<L, MaybeUninit<f32>>(src, (w, p.c_out, g.c_out), &mut y[oy * w..], h * w);
    }
}

/// `y[b] = then(conv(x[b], kernel))` by tiling `F` for a geometry Winograd [`takes`],
/// with `kernel(ci, co)` the 3x3 kernel from input channel `ci` to output channel `co`.
fn convolve<L: Lanes, F: Tiling>(
    x: &[f32],
    p: &Conv2dParams,
    kernel: impl Fn(usize, usize) -> [f32; 9],
    then: Epilogue,
) -> Vec<f32> {
    let g = Geometry::of::<L, F>(p);
    let u = transformed_kernels::<F>((p.c_in, p.c_out), &g, kernel);
    // The bias padded to whole vectors, so that the output transform loads it as one.
    let padded = then.bias.map(|b| {
        let mut padded = vec![0.0; g.c_out];
        padded[..p.c_out].copy_from_slice(&b[..p.c_out]);
        padded
    });
    let then = Epilogue {
        bias: padded.as_deref(),
        relu: then.relu,
    };
    let image = p.c_in * p.h_in * p.w_in;
    let forward = |bufs: &mut Loan, b, yb: &mut [MaybeUninit<f32>]| {
        let xb = &x[b * image..(b + 1) * image];
        // SAFETY: the caller checked that the CPU has `L`'s level.
        unsafe {
            L::run(
                #[inline(always)]
                || forward_image::<L, F>(&u, &g, p, &then, xb, bufs, yb),
            )
        }
    };
    // SAFETY: `forward_image` stores every value of its image.
    unsafe {
        per_image(
            p.batch,
            p.c_out * p.h_in * p.w_in,
            || Buffers::lend(&g, p, Role::Forward),
            forward,
        )
    }
}

/// Forward by Winograd with tiling `F`. `None` unless Winograd [`takes`] the geometry
/// and the CPU has `L`'s level.
pub fn conv2d<L: Lanes, F: Tiling>(x: &[f32], w: &[f32], p: &Conv2dParams) -> Option<Vec<f32>> {
    conv2d_then::<L, F>(x, w, p, Epilogue::NONE)
}

/// [`conv2d`] with the bias added and the ReLU applied in the output transform's store
/// (the eval fold of batch norm).
pub fn conv2d_then<L: Lanes, F: Tiling>(
    x: &[f32],
    w: &[f32],
    p: &Conv2dParams,
    then: Epilogue,
) -> Option<Vec<f32>> {
    if !takes(p) || !L::LEVEL.is_supported() {
        return None;
    }
    let kernel = |ci, co| -> [f32; 9] {
        let at = (co * p.c_in + ci) * 9;
        w[at..at + 9].try_into().expect("a 3x3 kernel")
    };
    Some(convolve::<L, F>(x, p, kernel, then))
}

/// Input gradient by Winograd with tiling `F`: the forward of `dy` with channels swapped
/// and every kernel rotated by 180 degrees (`W'[ci, co, ky, kx] = W[co, ci, 2 - ky, 2 - kx]`).
pub fn conv2d_input_grad<L: Lanes, F: Tiling>(
    g: &[f32],
    w: &[f32],
    p: &Conv2dParams,
) -> Option<Vec<f32>> {
    if !takes(p) || !L::LEVEL.is_supported() {
        return None;
    }
    let swapped = Conv2dParams {
        c_in: p.c_out,
        c_out: p.c_in,
        ..*p
    };
    // Input channel `co` of the swapped conv is output channel `co` of `p`.
    let kernel = |co, ci| -> [f32; 9] {
        let at = (co * p.c_in + ci) * 9;
        let mut rotated: [f32; 9] = w[at..at + 9].try_into().expect("a 3x3 kernel");
        rotated.reverse();
        rotated
    };
    Some(convolve::<L, F>(g, &swapped, kernel, Epilogue::NONE))
}

#[cfg(test)]
mod tests;
