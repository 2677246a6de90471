//! ResNets: the CIFAR family (ResNet-8/20/32, He et al. 2016 §4.2, with the option-A
//! parameter-free shortcut used by the LDAM/MiSLAS/ARB code) and torchvision's ResNet-50.
//! Every model splits into a feature extractor (`features`) and a linear classifier
//! (`classifier`), because the gradient-balance diagnostic needs the features.
//!
//! Tensor names are torchvision's (`conv1.weight`, `layer1.0.bn2.running_var`,
//! `layer2.0.downsample.0.weight`, `fc.bias`...), so that ResNet-50 is exactly
//! torchvision's `state_dict()` and the CIFAR nets follow the same scheme.
use crate::layers::{ConvBn, Fan, Linear, Named};
use arbor_engine::{no_grad, DType, Device, Error, Result, Tensor};
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
    /// ResNet-50 with one new Bottleneck block after `layer4` (named `layer4.3`): the
    /// Places-LT protocol's model, an ImageNet-pretrained backbone kept frozen while the
    /// new block and the classifier train.
    ResNet50Places,
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "resnet8" => Ok(Arch::ResNet8),
            "resnet20" => Ok(Arch::ResNet20),
            "resnet32" => Ok(Arch::ResNet32),
            "resnet50" => Ok(Arch::ResNet50),
            "resnet50-places" => Ok(Arch::ResNet50Places),
            other => Err(format!(
                "unknown architecture `{other}` (expected resnet8, resnet20, resnet32, resnet50 or resnet50-places)"
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
            Arch::ResNet50Places => "resnet50-places",
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
    /// Blocks `..backbone_blocks` (with the stem) are the pretrained backbone; the rest are
    /// added on top of it (`resnet50-places`' extra block).
    backbone_blocks: usize,
    /// The backbone runs in evaluation mode without a tape and its tensors do not train.
    frozen: bool,
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
            Arch::ResNet50Places => {
                let mut m = Self::resnet50(num_classes, dtype, &mut rng)?;
                let extra = Bottleneck {
                    a: ConvBn::new(2048, 512, 1, 1, Fan::Out, dtype, &mut rng)?,
                    b: ConvBn::new(512, 512, 3, 1, Fan::Out, dtype, &mut rng)?,
                    c: ConvBn::new(512, 2048, 1, 1, Fan::Out, dtype, &mut rng)?,
                    downsample: None,
                };
                m.blocks.push((3, 3, Block::Bottleneck(extra)));
                m.arch = Arch::ResNet50Places;
                Ok(m)
            }
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
            backbone_blocks: blocks.len(),
            blocks,
            classifier,
            feature_dim: 64,
            num_classes: classes,
            training: true,
            frozen: false,
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
            backbone_blocks: blocks.len(),
            blocks,
            classifier,
            feature_dim: 2048,
            num_classes: classes,
            training: true,
            frozen: false,
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
        let backbone = |training: bool| -> Result<Tensor> {
            let mut h = self.stem.forward_relu(x, training)?;
            if self.stem_pool {
                h = h.max_pool2d((3, 3), (2, 2), (1, 1))?;
            }
            for (_, _, block) in &self.blocks[..self.backbone_blocks] {
                h = block.forward(&h, training)?;
            }
            Ok(h)
        };
        // A frozen backbone needs no gradient: without a tape its activations are freed
        // as it goes, and batch norm uses (and keeps) its running statistics.
        let mut h = if self.frozen {
            no_grad(|| backbone(false))?
        } else {
            backbone(self.training)?
        };
        for (_, _, block) in &self.blocks[self.backbone_blocks..] {
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

    /// Freezes the backbone (see [`ResNet::head_prefixes`] for what still trains).
    pub fn freeze_backbone(&mut self) {
        self.frozen = true;
    }
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Name prefixes of the tensors that are not part of the pretrained backbone: the
    /// classifier (`fc.`) and any block added on top (`layer4.3.` for `resnet50-places`).
    pub fn head_prefixes(&self) -> Vec<String> {
        let mut out: Vec<String> = self.blocks[self.backbone_blocks..]
            .iter()
            .map(|(stage, i, _)| format!("layer{}.{i}.", stage + 1))
            .collect();
        out.push("fc.".into());
        out
    }

    /// The parameters the optimiser updates: all of them, or only the head's when frozen.
    pub fn trainable_parameters(&self) -> Vec<Tensor> {
        let head = self.head_prefixes();
        self.named()
            .0
            .into_iter()
            .filter(|n| !self.frozen || head.iter().any(|p| n.name.starts_with(p.as_str())))
            .map(|n| n.tensor)
            .collect()
    }

    pub fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|t| t.numel()).sum()
    }
}
