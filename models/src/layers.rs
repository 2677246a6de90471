//! The layers ResNets are made of. Each holds its tensors and applies the engine's ops;
//! initialisation follows PyTorch's so that a run here starts where a PyTorch run starts.
use arbor_engine::{DType, Device, Result, Tensor};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// A named tensor, for checkpoints and parameter listings.
#[derive(Clone, Debug)]
pub struct Named {
    pub name: String,
    pub tensor: Tensor,
}

/// `t` copied to `device`, still a trainable leaf (the copy starts a fresh gradient).
fn parameter_on(t: &Tensor, device: Device) -> Result<Tensor> {
    Ok(t.to_device(device)?.into_parameter())
}

/// A tensor of `shape` from values drawn by `sample`.
fn init(shape: &[usize], dtype: DType, mut sample: impl FnMut() -> f64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| sample()).collect();
    Tensor::from_vec(v, shape.to_vec())?.to_dtype(dtype)
}

/// Kaiming-normal: `N(0, 2 / fan)` (PyTorch's `kaiming_normal_` with the ReLU gain).
pub fn kaiming_normal(
    shape: &[usize],
    fan: usize,
    dtype: DType,
    rng: &mut impl Rng,
) -> Result<Tensor> {
    let normal = Normal::new(0.0, (2.0 / fan as f64).sqrt()).expect("positive std");
    init(shape, dtype, || normal.sample(rng))
}

/// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's default for `nn.Linear` weights and biases.
pub fn uniform_fan_in(
    shape: &[usize],
    fan_in: usize,
    dtype: DType,
    rng: &mut impl Rng,
) -> Result<Tensor> {
    let b = 1.0 / (fan_in as f64).sqrt();
    let u = Uniform::new(-b, b);
    init(shape, dtype, || u.sample(rng))
}

/// Which fan Kaiming init divides by: the CIFAR ResNets use fan-in (`kaiming_normal_`'s
/// default), torchvision's ResNet-50 fan-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fan {
    In,
    Out,
}

/// 2-D convolution without bias (every ResNet conv is followed by batch norm).
pub struct Conv2d {
    pub weight: Tensor,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        fan: Fan,
        dtype: DType,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let fan_n = match fan {
            Fan::In => c_in * k * k,
            Fan::Out => c_out * k * k,
        };
        let weight = kaiming_normal(&[c_out, c_in, k, k], fan_n, dtype, rng)?.into_parameter();
        Ok(Conv2d {
            weight,
            stride,
            padding: k / 2,
        })
    }
    /// Moves the weight to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.weight = parameter_on(&self.weight, device)?;
        Ok(())
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(
            &self.weight,
            None,
            (self.stride, self.stride),
            (self.padding, self.padding),
        )
    }
}

/// `Tensor::batch_norm2d` or `Tensor::batch_norm2d_relu`: the same arguments.
type BatchNormOp =
    fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor, bool, f64, f64) -> Result<Tensor>;

/// Batch norm over NCHW channels, PyTorch's defaults (momentum 0.1, eps 1e-5).
pub struct BatchNorm2d {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    /// Training-mode forwards so far, PyTorch's `num_batches_tracked` (which it saves, and
    /// which momentum-0.1 batch norm never reads). A host scalar of the model's dtype even
    /// on a GPU, so that counting costs no device work; exact up to 2^24 batches in f32.
    pub num_batches_tracked: Tensor,
}

impl BatchNorm2d {
    pub const MOMENTUM: f64 = 0.1;
    pub const EPS: f64 = 1e-5;

    pub fn new(c: usize, dtype: DType) -> Self {
        BatchNorm2d {
            gamma: Tensor::ones([c], dtype).into_parameter(),
            beta: Tensor::zeros([c], dtype).into_parameter(),
            running_mean: Tensor::zeros([c], dtype),
            running_var: Tensor::ones([c], dtype),
            num_batches_tracked: Tensor::scalar(0.0, dtype),
        }
    }
    /// Moves the affine parameters and the running statistics to `device` (the batch
    /// counter stays on the host).
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.gamma = parameter_on(&self.gamma, device)?;
        self.beta = parameter_on(&self.beta, device)?;
        self.running_mean = self.running_mean.to_device(device)?;
        self.running_var = self.running_var.to_device(device)?;
        Ok(())
    }
    pub fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        self.apply(x, training, Tensor::batch_norm2d)
    }
    /// `relu(forward(x))` as one fused op (one pass over the activation).
    pub fn forward_relu(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        self.apply(x, training, Tensor::batch_norm2d_relu)
    }
    /// `op` (batch norm, or batch norm + ReLU) with this layer's parameters and
    /// statistics. A training batch updates the running statistics, so it is counted in
    /// `num_batches_tracked` as PyTorch counts it.
    fn apply(&self, x: &Tensor, training: bool, op: BatchNormOp) -> Result<Tensor> {
        if training {
            let n = self.num_batches_tracked.item()?;
            let dtype = self.num_batches_tracked.dtype();
            self.num_batches_tracked
                .assign(&Tensor::scalar(n + 1.0, dtype))?;
        }
        op(
            x,
            &self.gamma,
            &self.beta,
            &self.running_mean,
            &self.running_var,
            training,
            Self::MOMENTUM,
            Self::EPS,
        )
    }
    fn named(&self, prefix: &str, params: &mut Vec<Named>, buffers: &mut Vec<Named>) {
        push(params, prefix, "weight", &self.gamma);
        push(params, prefix, "bias", &self.beta);
        push(buffers, prefix, "running_mean", &self.running_mean);
        push(buffers, prefix, "running_var", &self.running_var);
        push(
            buffers,
            prefix,
            "num_batches_tracked",
            &self.num_batches_tracked,
        );
    }
}

/// A fully connected layer `y = x W^T + b`.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    /// Kaiming-normal weight (the CIFAR reference's init) and PyTorch's default bias.
    pub fn kaiming(d_in: usize, d_out: usize, dtype: DType, rng: &mut impl Rng) -> Result<Self> {
        Ok(Linear {
            weight: kaiming_normal(&[d_out, d_in], d_in, dtype, rng)?.into_parameter(),
            bias: uniform_fan_in(&[d_out], d_in, dtype, rng)?.into_parameter(),
        })
    }
    /// PyTorch's default `nn.Linear` init (torchvision ResNet-50's classifier).
    pub fn default_init(
        d_in: usize,
        d_out: usize,
        dtype: DType,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Ok(Linear {
            weight: uniform_fan_in(&[d_out, d_in], d_in, dtype, rng)?.into_parameter(),
            bias: uniform_fan_in(&[d_out], d_in, dtype, rng)?.into_parameter(),
        })
    }
    /// Moves the weight and bias to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.weight = parameter_on(&self.weight, device)?;
        self.bias = parameter_on(&self.bias, device)?;
        Ok(())
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, Some(&self.bias))
    }
    pub(crate) fn named(&self, prefix: &str, params: &mut Vec<Named>) {
        push(params, prefix, "weight", &self.weight);
        push(params, prefix, "bias", &self.bias);
    }
}

pub(crate) fn push(list: &mut Vec<Named>, prefix: &str, name: &str, t: &Tensor) {
    list.push(Named {
        name: format!("{prefix}.{name}"),
        tensor: t.clone(),
    });
}

/// conv -> bn, the pair every block repeats.
/// Whether [`ConvBn`] folds batch norm into its conv in evaluation (on by default).
static FOLD_BATCH_NORM: AtomicBool = AtomicBool::new(true);

/// Turns the evaluation-time folding of batch norm into the conv on or off, for the
/// process: off, evaluation runs the composed ops, which the bench and tests compare
/// the folded forward with.
pub fn fold_batch_norm_in_evaluation(on: bool) {
    FOLD_BATCH_NORM.store(on, Relaxed);
}

pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ConvBn {
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        fan: Fan,
        dtype: DType,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Ok(ConvBn {
            conv: Conv2d::new(c_in, c_out, k, stride, fan, dtype, rng)?,
            bn: BatchNorm2d::new(c_out, dtype),
        })
    }
    /// Moves both layers to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.conv.to_device(device)?;
        self.bn.to_device(device)
    }
    pub fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        if let Some(y) = self.folded(x, training, false) {
            return y;
        }
        self.bn.forward(&self.conv.forward(x)?, training)
    }
    /// `relu(forward(x))`, the batch norm and ReLU fused.
    pub fn forward_relu(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        if let Some(y) = self.folded(x, training, true) {
            return y;
        }
        self.bn.forward_relu(&self.conv.forward(x)?, training)
    }
    /// In evaluation with the tape off, batch norm with running statistics is an affine
    /// map per channel, so it folds into the conv: `w' = w gamma/sqrt(var + eps)` and
    /// `b' = beta - mean gamma/sqrt(var + eps)`, and the bias (and ReLU) are applied as
    /// the conv stores its output ([`Tensor::conv2d_bias_act`]) instead of in two more
    /// passes over the activation. The fold is recomputed each call (a few thousand
    /// multiplies beside the conv's millions), so it never goes stale after an update.
    /// `None` when training or while the tape records (the composed ops then run).
    fn folded(&self, x: &Tensor, training: bool, relu: bool) -> Option<Result<Tensor>> {
        if training || arbor_engine::tape::is_recording() || !FOLD_BATCH_NORM.load(Relaxed) {
            return None;
        }
        let bn = &self.bn;
        let fold = || -> Result<Tensor> {
            let scale = bn
                .gamma
                .div(&bn.running_var.add_scalar(BatchNorm2d::EPS)?.sqrt()?)?;
            let bias = bn.beta.sub(&bn.running_mean.mul(&scale)?)?;
            let c_out = scale.dims()[0];
            let weight = self.conv.weight.mul(&scale.reshape([c_out, 1, 1, 1])?)?;
            let (s, p) = (self.conv.stride, self.conv.padding);
            x.conv2d_bias_act(&weight, &bias, (s, s), (p, p), relu)
        };
        Some(fold())
    }
    /// Names in PyTorch's style: `{prefix}conv{i}.weight`, `{prefix}bn{i}.weight`...
    pub(crate) fn named(
        &self,
        conv: &str,
        bn: &str,
        params: &mut Vec<Named>,
        buffers: &mut Vec<Named>,
    ) {
        push(params, conv, "weight", &self.conv.weight);
        self.bn.named(bn, params, buffers);
    }
}
