//! ResNets: the CIFAR family (ResNet-8/20/32, He et al. 2016 §4.2, with the option-A
//! parameter-free shortcut used by the LDAM/MiSLAS/ARB code) and torchvision's ResNet-50.
//! Every model splits into a feature extractor (`features`) and a linear classifier
//! (`classifier`), because the gradient-balance diagnostic needs the features.
use crate::layers::{ConvBn, Fan, Linear, Named};
use arbor_engine::{DType, Device, Error, Result, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::str::FromStr;

/// The architectures `repro` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Arch {
    ResNet8,
    ResNet20,
    ResNet32,
    ResNet50,
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "resnet8" => Ok(Arch::ResNet8),
            "resnet20" => Ok(Arch::ResNet20),
            "resnet32" => Ok(Arch::ResNet32),
            "resnet50" => Ok(Arch::ResNet50),
            other => Err(format!(
                "unknown architecture `{other}` (expected resnet8, resnet20, resnet32 or resnet50)"
            )),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::ResNet8 => "resnet8",
            Arch::ResNet20 => "resnet20",
            Arch::ResNet32 => "resnet32",
            Arch::ResNet50 => "resnet50",
        })
    }
}

/// conv-bn-relu-conv-bn, plus the shortcut, then relu.
struct BasicBlock {
    a: ConvBn,
    b: ConvBn,
    /// Option A: when the shape changes, subsample by 2 and zero-pad `pad` channels on each side.
    pad: Option<usize>,
}

/// 1x1 reduce, 3x3 (carrying the stride, as torchvision), 1x1 expand (x4).
struct Bottleneck {
    a: ConvBn,
    b: ConvBn,
    c: ConvBn,
    downsample: Option<ConvBn>,
}

enum Block {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl Block {
    fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        match self {
            Block::Basic(bb) => {
                let out = bb.b.forward(&bb.a.forward_relu(x, training)?, training)?;
                let shortcut = match bb.pad {
                    None => x.clone(),
                    Some(p) => {
                        let d = x.dims();
                        x.slice(&[(0, d[0], 1), (0, d[1], 1), (0, d[2], 2), (0, d[3], 2)])?
                            .pad_channels(p, p)?
                    }
                };
                out.add_relu(&shortcut)
            }
            Block::Bottleneck(bn) => {
                let out = bn.a.forward_relu(x, training)?;
                let out = bn.b.forward_relu(&out, training)?;
                let out = bn.c.forward(&out, training)?;
                let shortcut = match &bn.downsample {
                    None => x.clone(),
                    Some(ds) => ds.forward(x, training)?,
                };
                out.add_relu(&shortcut)
            }
        }
    }

    fn move_to_device(&mut self, device: Device) -> Result<()> {
        match self {
            Block::Basic(bb) => {
                bb.a.to_device(device)?;
                bb.b.to_device(device)
            }
            Block::Bottleneck(bn) => {
                for cb in [&mut bn.a, &mut bn.b, &mut bn.c] {
                    cb.to_device(device)?;
                }
                match &mut bn.downsample {
                    Some(ds) => ds.to_device(device),
                    None => Ok(()),
                }
            }
        }
    }

    fn named(&self, prefix: &str, params: &mut Vec<Named>, buffers: &mut Vec<Named>) {
        match self {
            Block::Basic(bb) => {
                bb.a.named(
                    &format!("{prefix}.conv1"),
                    &format!("{prefix}.bn1"),
                    params,
                    buffers,
                );
                bb.b.named(
                    &format!("{prefix}.conv2"),
                    &format!("{prefix}.bn2"),
                    params,
                    buffers,
                );
            }
            Block::Bottleneck(bn) => {
                for (i, cb) in [&bn.a, &bn.b, &bn.c].into_iter().enumerate() {
                    cb.named(
                        &format!("{prefix}.conv{}", i + 1),
                        &format!("{prefix}.bn{}", i + 1),
                        params,
                        buffers,
                    );
                }
                if let Some(ds) = &bn.downsample {
                    ds.named(
                        &format!("{prefix}.downsample.0"),
                        &format!("{prefix}.downsample.1"),
                        params,
                        buffers,
                    );
                }
            }
        }
    }
}

/// A ResNet split into features and classifier.
pub struct ResNet {
    pub arch: Arch,
    stem: ConvBn,
    /// ResNet-50's 3x3 stride-2 max pool after the stem.
    stem_pool: bool,
    /// (stage index, block index within the stage, block)
    blocks: Vec<(usize, usize, Block)>,
    pub classifier: Linear,
    pub feature_dim: usize,
    pub num_classes: usize,
    training: bool,
}

impl ResNet {
    /// Builds `arch` for `num_classes` with weights drawn from `seed`.
    pub fn new(arch: Arch, num_classes: usize, dtype: DType, seed: u64) -> Result<Self> {
        if num_classes < 2 {
            return Err(Error::Invalid {
                op: "resnet",
                msg: format!("needs at least 2 classes, got {num_classes}"),
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        match arch {
            Arch::ResNet8 => Self::cifar(arch, 1, num_classes, dtype, &mut rng),
            Arch::ResNet20 => Self::cifar(arch, 3, num_classes, dtype, &mut rng),
            Arch::ResNet32 => Self::cifar(arch, 5, num_classes, dtype, &mut rng),
            Arch::ResNet50 => Self::resnet50(num_classes, dtype, &mut rng),
        }
    }

    fn cifar(arch: Arch, n: usize, classes: usize, dtype: DType, rng: &mut StdRng) -> Result<Self> {
        let stem = ConvBn::new(3, 16, 3, 1, Fan::In, dtype, rng)?;
        let mut blocks = Vec::new();
        let mut c_in = 16;
        for (stage, (planes, stride)) in [(16, 1), (32, 2), (64, 2)].into_iter().enumerate() {
            for i in 0..n {
                let s = if i == 0 { stride } else { 1 };
                let pad = (s != 1 || c_in != planes).then_some(planes / 4);
                let a = ConvBn::new(c_in, planes, 3, s, Fan::In, dtype, rng)?;
                let b = ConvBn::new(planes, planes, 3, 1, Fan::In, dtype, rng)?;
                blocks.push((stage, i, Block::Basic(BasicBlock { a, b, pad })));
                c_in = planes;
            }
        }
        let classifier = Linear::kaiming(64, classes, dtype, rng)?;
        Ok(ResNet {
            arch,
            stem,
            stem_pool: false,
            blocks,
            classifier,
            feature_dim: 64,
            num_classes: classes,
            training: true,
        })
    }

    fn resnet50(classes: usize, dtype: DType, rng: &mut StdRng) -> Result<Self> {
        let stem = ConvBn::new(3, 64, 7, 2, Fan::Out, dtype, rng)?;
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, (planes, count, stride)) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]
            .into_iter()
            .enumerate()
        {
            for i in 0..count {
                let s = if i == 0 { stride } else { 1 };
                let out = planes * 4;
                let downsample = if s != 1 || c_in != out {
                    Some(ConvBn::new(c_in, out, 1, s, Fan::Out, dtype, rng)?)
                } else {
                    None
                };
                let block = Bottleneck {
                    a: ConvBn::new(c_in, planes, 1, 1, Fan::Out, dtype, rng)?,
                    b: ConvBn::new(planes, planes, 3, s, Fan::Out, dtype, rng)?,
                    c: ConvBn::new(planes, out, 1, 1, Fan::Out, dtype, rng)?,
                    downsample,
                };
                blocks.push((stage, i, Block::Bottleneck(block)));
                c_in = out;
            }
        }
        let classifier = Linear::default_init(2048, classes, dtype, rng)?;
        Ok(ResNet {
            arch: Arch::ResNet50,
            stem,
            stem_pool: true,
            blocks,
            classifier,
            feature_dim: 2048,
            num_classes: classes,
            training: true,
        })
    }

    /// Moves every parameter and running statistic to `device` (a copy; new parameter
    /// tensors, so call [`ResNet::parameters`] for the optimiser afterwards). Inputs must
    /// then live on `device` too.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.stem.to_device(device)?;
        for (_, _, block) in &mut self.blocks {
            block.move_to_device(device)?;
        }
        self.classifier.to_device(device)
    }

    /// Where the model's tensors live.
    pub fn device(&self) -> Device {
        self.classifier.weight.device()
    }

    /// Switches batch norm between batch statistics (training) and running statistics.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// `[N, 3, H, W]` images to `[N, feature_dim]` pooled features.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 4 || x.dims()[1] != 3 {
            return Err(Error::Shape {
                op: "resnet",
                msg: format!("expects [N, 3, H, W] images, got {:?}", x.shape()),
            });
        }
        let mut h = self.stem.forward_relu(x, self.training)?;
        if self.stem_pool {
            h = h.max_pool2d((3, 3), (2, 2), (1, 1))?;
        }
        for (_, _, block) in &self.blocks {
            h = block.forward(&h, self.training)?;
        }
        h.global_avg_pool2d()
    }

    /// Logits `[N, C]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classifier.forward(&self.features(x)?)
    }

    /// Trainable tensors and running statistics, with PyTorch-style names.
    pub fn named(&self) -> (Vec<Named>, Vec<Named>) {
        let (mut params, mut buffers) = (Vec::new(), Vec::new());
        self.stem.named("conv1", "bn1", &mut params, &mut buffers);
        for (stage, i, block) in &self.blocks {
            block.named(
                &format!("layer{}.{i}", stage + 1),
                &mut params,
                &mut buffers,
            );
        }
        self.classifier.named("fc", &mut params);
        (params, buffers)
    }

    pub fn parameters(&self) -> Vec<Tensor> {
        self.named().0.into_iter().map(|n| n.tensor).collect()
    }

    pub fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|t| t.numel()).sum()
    }
}
