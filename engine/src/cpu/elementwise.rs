//! Elementwise kernels: unary maps and broadcasting binary ops.
//!
//! Broadcasting is handled by coalescing dimensions until the innermost one is as long as
//! possible, then running a branch-free inner loop in one of three layouts (both operands
//! contiguous, or one of them a repeated scalar). Rows run in parallel when the tensor is
//! large enough to pay for rayon.
use super::simd::with_simd;
use crate::backend::{BinaryOp, UnaryOp};
use crate::{Float, Shape};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many elements a kernel runs on the calling thread.
pub const PAR_MIN: usize = 1 << 15;
/// Elements per rayon task for flat loops.
const CHUNK: usize = 1 << 14;

/// A vector of `n` values written by `fill`, without zeroing it first (zero-filling the
/// output costs a third of a memory-bound kernel's time). `fill` must write every element:
/// the callers below zip the output with inputs of the same length.
#[inline(always)]
fn filled<T: Float>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: `fill` initialised all `n` elements (see above), and `T` is a plain float.
    unsafe { v.set_len(n) };
    v
}

/// Applies `f` to every element of `x`, in parallel chunks for large inputs.
#[inline(always)]
pub fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    let run = |o: &mut [MaybeUninit<T>], i: &[T]| {
        with_simd(
            #[inline(always)]
            || {
                for (o, &i) in o.iter_mut().zip(i) {
                    o.write(f(i));
                }
            },
        )
    };
    filled(x.len(), |out| {
        if x.len() >= PAR_MIN {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(o, i)| run(o, i));
        } else {
            run(out, x);
        }
    })
}

pub fn unary<T: Float>(x: &[T], op: UnaryOp) -> Vec<T> {
    let c = T::from_f64;
    match op {
        UnaryOp::Neg => map(x, |v| -v),
        UnaryOp::Exp => map(x, |v| v.fast_exp()),
        UnaryOp::Log => map(x, |v| v.ln()),
        UnaryOp::Sqrt => map(x, |v| v.sqrt()),
        UnaryOp::Relu => map(x, |v| if v > T::ZERO { v } else { T::ZERO }),
        UnaryOp::Clamp { lo, hi } => {
            let (lo, hi) = (c(lo), c(hi));
            map(x, move |v| {
                if v < lo {
                    lo
                } else if v > hi {
                    hi
                } else {
                    v
                }
            })
        }
        UnaryOp::Powf(p) => {
            let p = c(p);
            map(x, move |v| v.powf(p))
        }
        UnaryOp::Affine { mul, add } => {
            let (m, a) = (c(mul), c(add));
            map(x, move |v| m * v + a)
        }
    }
}

pub fn binary<T: Float>(
    a: &[T],
    b: &[T],
    op: BinaryOp,
    sa: &Shape,
    sb: &Shape,
    out: &Shape,
) -> Vec<T> {
    if let BinaryOp::ClampGrad { lo, hi } = op {
        let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
        return broadcast_zip(a, b, sa, sb, out, move |x, g| {
            if x >= lo && x <= hi {
                g
            } else {
                T::ZERO
            }
        });
    }
    // One closure per op, so each op gets its own monomorphised, vectorised loop (a function
    // pointer in the inner loop would be an opaque call per element).
    let z = T::ZERO;
    match op {
        BinaryOp::Add => broadcast_zip(a, b, sa, sb, out, |x, y| x + y),
        BinaryOp::Sub => broadcast_zip(a, b, sa, sb, out, |x, y| x - y),
        BinaryOp::Mul => broadcast_zip(a, b, sa, sb, out, |x, y| x * y),
        BinaryOp::Div => broadcast_zip(a, b, sa, sb, out, |x, y| x / y),
        BinaryOp::Eq => broadcast_zip(a, b, sa, sb, out, |x, y| if x == y { T::ONE } else { z }),
        BinaryOp::ReluGrad => {
            broadcast_zip(a, b, sa, sb, out, move |x, g| if x > z { g } else { z })
        }
        BinaryOp::ClampGrad { .. } => unreachable!("handled above, with its bounds"),
    }
}

/// The broadcast geometry after merging dimensions that are contiguous for both operands.
struct Layout {
    /// Outer dimensions (all but the innermost), with each operand's strides.
    outer_dims: Vec<usize>,
    outer_a: Vec<usize>,
    outer_b: Vec<usize>,
    inner: usize,
    inner_a: usize,
    inner_b: usize,
}

fn coalesce(sa: &Shape, sb: &Shape, out: &Shape) -> Layout {
    let ba = sa.broadcast_strides(out);
    let bb = sb.broadcast_strides(out);
    let mut dims: Vec<usize> = Vec::new();
    let mut st_a: Vec<usize> = Vec::new();
    let mut st_b: Vec<usize> = Vec::new();
    for i in 0..out.rank() {
        let d = out.dims()[i];
        if d == 1 {
            continue;
        }
        if let (Some(&pd), Some(&pa), Some(&pb)) = (dims.last(), st_a.last(), st_b.last()) {
            let _ = pd;
            if pa == ba[i] * d && pb == bb[i] * d {
                let last = dims.len() - 1;
                dims[last] *= d;
                st_a[last] = ba[i];
                st_b[last] = bb[i];
                continue;
            }
        }
        dims.push(d);
        st_a.push(ba[i]);
        st_b.push(bb[i]);
    }
    let (inner, inner_a, inner_b) = match dims.pop() {
        Some(d) => (d, st_a.pop().unwrap_or(0), st_b.pop().unwrap_or(0)),
        None => (1, 0, 0),
    };
    Layout {
        outer_dims: dims,
        outer_a: st_a,
        outer_b: st_b,
        inner,
        inner_a,
        inner_b,
    }
}

#[inline(always)]
fn broadcast_zip<T: Float, F: Fn(T, T) -> T + Sync + Send + Copy>(
    a: &[T],
    b: &[T],
    sa: &Shape,
    sb: &Shape,
    out_shape: &Shape,
    f: F,
) -> Vec<T> {
    let n = out_shape.numel();
    if n == 0 {
        return Vec::new();
    }
    if sa == out_shape && sb == out_shape {
        let run = |o: &mut [MaybeUninit<T>], x: &[T], y: &[T]| {
            with_simd(
                #[inline(always)]
                || {
                    for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                        o.write(f(x, y));
                    }
                },
            )
        };
        return filled(n, |out| {
            if n >= PAR_MIN {
                out.par_chunks_mut(CHUNK)
                    .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                    .for_each(|(o, (x, y))| run(o, x, y));
            } else {
                run(out, a, b);
            }
        });
    }
    let mut out = vec![T::ZERO; n];
    let lay = coalesce(sa, sb, out_shape);
    let inner = lay.inner;
    let row = |r: usize, o: &mut [T]| {
        // Offsets of this row in each operand, from its multi-index over the outer dims.
        let (mut oa, mut ob, mut rem) = (0, 0, r);
        for k in (0..lay.outer_dims.len()).rev() {
            let i = rem % lay.outer_dims[k];
            rem /= lay.outer_dims[k];
            oa += i * lay.outer_a[k];
            ob += i * lay.outer_b[k];
        }
        with_simd(
            #[inline(always)]
            || match (lay.inner_a, lay.inner_b) {
                (1, 1) => {
                    for ((o, &x), &y) in
                        o.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner])
                    {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in o.iter_mut().zip(&a[oa..oa + inner]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in o.iter_mut().zip(&b[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for o in o.iter_mut() {
                        *o = f(a[oa], b[ob]);
                    }
                }
            },
        )
    };
    if n >= PAR_MIN {
        // Group rows so that each task touches at least CHUNK elements.
        let rows_per_task = CHUNK.div_ceil(inner).max(1);
        out.par_chunks_mut(rows_per_task * inner)
            .enumerate()
            .for_each(|(t, block)| {
                for (j, o) in block.chunks_mut(inner).enumerate() {
                    row(t * rows_per_task + j, o);
                }
            });
    } else {
        for (r, o) in out.chunks_mut(inner).enumerate() {
            row(r, o);
        }
    }
    out
}

/// `dst[i] = f(dst[i], src[i])` in place, in parallel chunks for large inputs: for a
/// gradient nothing else holds, the result goes over it instead of into a new buffer.
#[inline(always)]
fn zip_assign<T: Float>(dst: &mut [T], src: &[T], f: impl Fn(T, T) -> T + Sync + Send) {
    assert_eq!(dst.len(), src.len(), "in-place op of unequal lengths");
    let run = |d: &mut [T], s: &[T]| {
        with_simd(
            #[inline(always)]
            || {
                for (d, &s) in d.iter_mut().zip(s) {
                    *d = f(*d, s);
                }
            },
        )
    };
    if dst.len() >= PAR_MIN {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| run(d, s));
    } else {
        run(dst, src);
    }
}

/// `dst += src`, elementwise: [`binary`]'s `Add` over its first operand.
pub fn add_assign<T: Float>(dst: &mut [T], src: &[T]) {
    zip_assign(dst, src, |d, s| d + s)
}

/// `grad = grad [out > 0]`: [`binary`]'s `ReluGrad` of `(out, grad)` over `grad`.
pub fn relu_grad_assign<T: Float>(grad: &mut [T], out: &[T]) {
    let z = T::ZERO;
    zip_assign(grad, out, move |g, y| if y > z { g } else { z })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_add_row_column_and_scalar() {
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let out = Shape::new([2, 3]);
        let col = binary(
            &a,
            &[10.0, 20.0],
            BinaryOp::Add,
            &out,
            &Shape::new([2, 1]),
            &out,
        );
        assert_eq!(col, vec![11.0, 12.0, 13.0, 24.0, 25.0, 26.0]);
        let row = binary(
            &a,
            &[1.0, 0.0, -1.0],
            BinaryOp::Mul,
            &out,
            &Shape::new([3]),
            &out,
        );
        assert_eq!(row, vec![1.0, 0.0, -3.0, 4.0, 0.0, -6.0]);
        let s = binary(&[2.0], &a, BinaryOp::Sub, &Shape::scalar(), &out, &out);
        assert_eq!(s, vec![1.0, 0.0, -1.0, -2.0, -3.0, -4.0]);
    }

    #[test]
    fn outer_product_broadcast() {
        let out = Shape::new([2, 3]);
        let r = binary(
            &[1.0f32, 2.0],
            &[1.0, 10.0, 100.0],
            BinaryOp::Mul,
            &Shape::new([2, 1]),
            &Shape::new([1, 3]),
            &out,
        );
        assert_eq!(r, vec![1.0, 10.0, 100.0, 2.0, 20.0, 200.0]);
    }
}
