//! 2-D convolution over NCHW input (PyTorch's `conv2d`, cross-correlation, no dilation or
//! groups).
//!
//! `y[b, co, oy, ox] = bias[co] + sum_{ci, ky, kx} W[co, ci, ky, kx] x[b, ci, oy*sh + ky - ph, ox*sw + kx - pw]`
//! with `x` zero outside the image, `h_out = (h + 2 ph - kh) / sh + 1` (likewise `w_out`).
//!
//! Backward: `dx[b, ci, iy, ix] = sum W[co, ci, ky, kx] dy[b, co, oy, ox]` over the output
//! positions that read `(iy, ix)`, and `dW[co, ci, ky, kx] = sum_b,oy,ox dy[b, co, oy, ox] x[b, ci, ..]`
//! (the same reads as the forward). The bias is a broadcast add, differentiated as one.
//!
//! `conv2d_bias_act` is the evaluation-only form with batch norm folded in: conv, bias
//! and an optional ReLU as one op, with no backward.
use super::check_same;
use crate::backend::Conv2dParams;
use crate::cpu::conv::conv2d_bias_act;
use crate::cpu::CpuStorage;
use crate::error::{invalid, shape_err, Result};
use crate::storage::Storage;
use crate::tape::{self, Backward};
use crate::{Error, Float, Shape, Tensor};

#[derive(Debug)]
struct Conv2dBackward {
    params: Conv2dParams,
}

impl Backward for Conv2dBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let p = &self.params;
        let dx = if x.requires_grad() {
            let s = g.storage().conv2d_input_grad(&w.storage(), p)?;
            Some(Tensor::from_storage(s, x.shape().clone())?)
        } else {
            None
        };
        let dw = if w.requires_grad() {
            let s = g.storage().conv2d_weight_grad(&x.storage(), p)?;
            Some(Tensor::from_storage(s, w.shape().clone())?)
        } else {
            None
        };
        Ok(vec![dx, dw])
    }
}

impl Tensor {
    /// 2-D convolution of NCHW `self` with `weight: [c_out, c_in, kh, kw]` and an optional
    /// `bias: [c_out]`; `stride` and `padding` are `(rows, columns)`. The output is
    /// `[n, c_out, (h + 2 ph - kh) / sh + 1, (w + 2 pw - kw) / sw + 1]`.
    /// `y[b, co] = bias[co] + sum_ci W[co, ci] ⋆ x[b, ci]` (cross-correlation);
    /// `dx = sum_co W[co, ci] ⋆ᵀ dy[b, co]` (the transposed convolution),
    /// `dW[co, ci] = sum_b dy[b, co] ⋆ x[b, ci]`, `dbias[co] = sum_{b,oy,ox} dy[b, co]`.
    /// The module docs write the sums out index by index.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        check_same("conv2d", self, weight)?;
        let params = Conv2dParams::new(self.shape(), weight.shape(), stride, padding)?;
        if let Some(b) = bias {
            check_bias("conv2d", self, weight, b, &params)?;
        }
        let shape = Shape::new([params.batch, params.c_out, params.h_out(), params.w_out()]);
        let s = self.storage().conv2d(&weight.storage(), &params)?;
        let y = Tensor::from_op(s, shape, &[self, weight], |_| Conv2dBackward { params });
        match bias {
            Some(b) => y.add(&b.reshape([1, params.c_out, 1, 1])?),
            None => Ok(y),
        }
    }
}

/// `bias` must be `[c_out]`, with `x`'s dtype and device.
fn check_bias(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    params: &Conv2dParams,
) -> Result<()> {
    check_same(op, x, bias)?;
    if bias.dims() != [params.c_out] {
        return shape_err(
            op,
            format!(
                "bias {:?} for weight {:?}: want [{}]",
                bias.shape(),
                weight.shape(),
                params.c_out
            ),
        );
    }
    Ok(())
}

impl Tensor {
    /// Inference only: `conv2d(self, weight, Some(bias))`, then ReLU when `relu`, in one
    /// pass over the output. It is what a conv followed by batch norm in evaluation
    /// becomes once the norm is folded into it (`weight' = weight gamma/sqrt(var + eps)`,
    /// `bias = beta - mean gamma/sqrt(var + eps)`, per output channel).
    ///
    /// On the CPU the direct kernels add the bias and clamp as they store; the generic
    /// path does both in one pass after its products; other devices run the composed ops.
    /// There is no backward: while the tape records and any operand requires a gradient,
    /// this is an error (train with `conv2d` and `batch_norm2d`).
    pub fn conv2d_bias_act(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        stride: (usize, usize),
        padding: (usize, usize),
        relu: bool,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d_bias_act";
        if tape::is_recording() && [self, weight, bias].iter().any(|t| t.requires_grad()) {
            return Err(Error::Tape(format!(
                "{OP} is inference-only (it has no backward) but an operand requires a \
                 gradient: run it under no_grad, or use conv2d and batch_norm2d to train"
            )));
        }
        check_same(OP, self, weight)?;
        let params = Conv2dParams::new(self.shape(), weight.shape(), stride, padding)?;
        check_bias(OP, self, weight, bias, &params)?;
        let shape = Shape::new([params.batch, params.c_out, params.h_out(), params.w_out()]);
        fn run<T: Float>(
            [x, w, b]: [&Storage; 3],
            relu: bool,
            p: &Conv2dParams,
        ) -> Option<CpuStorage> {
            fn host<T: Float>(s: &Storage) -> Option<&[T]> {
                match s {
                    Storage::Cpu(c) => c.as_slice::<T>(),
                    _ => None,
                }
            }
            let y = conv2d_bias_act(host::<T>(x)?, host(w)?, host(b)?, relu, p);
            Some(CpuStorage::from_vec(y))
        }
        let folded = {
            let (xs, ws, bs) = (self.storage(), weight.storage(), bias.storage());
            let parts = [&*xs, &*ws, &*bs];
            run::<f32>(parts, relu, &params).or_else(|| run::<f64>(parts, relu, &params))
        };
        match folded {
            Some(y) => Tensor::from_storage(Storage::Cpu(y), shape),
            None => {
                let y = self.conv2d(weight, Some(bias), stride, padding)?;
                if relu {
                    y.relu()
                } else {
                    Ok(y)
                }
            }
        }
    }
}

impl Conv2dParams {
    /// The geometry of `conv2d(x, w, stride, padding)`, or the error that names what is
    /// wrong: ranks, channel counts, a zero stride, an empty kernel, or a kernel larger
    /// than the padded input.
    pub fn new(
        x: &Shape,
        w: &Shape,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Self> {
        const OP: &str = "conv2d";
        if x.rank() != 4 || w.rank() != 4 {
            return shape_err(
                OP,
                format!(
                    "input {:?} and weight {:?}: want [n, c_in, h, w] and [c_out, c_in, kh, kw]",
                    x, w
                ),
            );
        }
        let (xd, wd) = (x.dims(), w.dims());
        if xd[1] != wd[1] {
            return shape_err(
                OP,
                format!(
                    "input {:?} has {} channels, weight {:?} expects {}",
                    x, xd[1], w, wd[1]
                ),
            );
        }
        if stride.0 == 0 || stride.1 == 0 {
            return invalid(
                OP,
                format!(
                    "stride {stride:?} must be positive (input {:?}, weight {:?})",
                    x, w
                ),
            );
        }
        if wd[2] == 0 || wd[3] == 0 {
            return invalid(OP, format!("weight {:?} has an empty kernel", w));
        }
        let padded = (xd[2] + 2 * padding.0, xd[3] + 2 * padding.1);
        if wd[2] > padded.0 || wd[3] > padded.1 {
            return shape_err(
                OP,
                format!(
                    "kernel {}x{} of weight {w:?} is larger than input {x:?} padded by {padding:?} ({}x{})",
                    wd[2], wd[3], padded.0, padded.1
                ),
            );
        }
        Ok(Conv2dParams {
            batch: xd[0],
            c_in: xd[1],
            h_in: xd[2],
            w_in: xd[3],
            c_out: wd[0],
            kh: wd[2],
            kw: wd[3],
            stride,
            padding,
        })
    }
}
