//! The reference configurations by name, and the published numbers to compare against
//! (`shared/spec/protocol.md`, carried here with their sources).
use crate::config::{CountsMode, DatasetKind, RunConfig};
use crate::resnet::Arch;

/// A named reference run.
#[derive(Clone, Debug)]
pub struct Preset {
    pub name: String,
    pub description: String,
    pub config: RunConfig,
}

/// The four CIFAR configs of the ARB reference and four baselines, per dataset and IF.
const CIFAR_VARIANTS: [(&str, &str, CountsMode, f64); 8] = [
    ("ce", "ce", CountsMode::Batch, 0.0),
    // The baselines the protocol compares against, on the same recipe.
    ("focal", "focal", CountsMode::Batch, 0.0),
    ("cb", "cb", CountsMode::Batch, 0.0),
    ("ldam-drw", "ldam-drw", CountsMode::Batch, 0.0),
    ("bsm", "bsm", CountsMode::Batch, 0.0),
    ("arb", "arb", CountsMode::Batch, 0.0),
    ("arb-mixup", "arb", CountsMode::Batch, 1.0),
    ("arb-ugcc", "arb", CountsMode::Global, 0.0),
];

/// Every preset: CIFAR-10/100-LT x IF 100/50/10 x {ce, focal, cb, ldam-drw, bsm, arb,
/// arb-mixup, arb-ugcc}, and the large-scale ARB runs.
pub fn all() -> Vec<Preset> {
    let mut out = Vec::new();
    for (ds, short) in [
        (DatasetKind::Cifar10Lt, "cifar10-lt"),
        (DatasetKind::Cifar100Lt, "cifar100-lt"),
    ] {
        for imb in [100, 50, 10] {
            for (variant, loss, counts, mixup) in CIFAR_VARIANTS {
                let config = RunConfig {
                    dataset: ds,
                    imb,
                    loss: loss.into(),
                    counts,
                    mixup,
                    ..RunConfig::default()
                };
                out.push(Preset {
                    name: format!("{short}-if{imb}-{variant}"),
                    description: format!(
                        "{short} IF {imb}, ResNet-32, {loss} ({counts} counts{}), 200 epochs, batch 128, lr 0.1, wd 2e-4",
                        if mixup > 0.0 { ", mixup 1.0" } else { "" }
                    ),
                    config,
                });
            }
        }
    }
    // Large scale (protocol table): ResNet-50, global counts, mixup 0.2, cosine schedule.
    for (ds, short, epochs, batch, wd) in [
        (DatasetKind::ImageNetLt, "imagenet-lt", 200, 1024, 5e-4),
        (DatasetKind::INat2018, "inat2018", 200, 1024, 1e-4),
        (DatasetKind::PlacesLt, "places-lt", 90, 1024, 5e-4),
    ] {
        // Places-LT fine-tunes an ImageNet-pretrained ResNet-50 (`--init-from`): frozen but
        // for one new Bottleneck block and the classifier.
        let places = ds == DatasetKind::PlacesLt;
        let config = RunConfig {
            dataset: ds,
            imb: 1,
            arch: if places {
                Arch::ResNet50Places
            } else {
                Arch::ResNet50
            },
            freeze_backbone: places,
            loss: "arb".into(),
            counts: CountsMode::Global,
            mixup: 0.2,
            epochs,
            batch,
            lr: 0.1,
            wd,
            schedule: "cosine".into(),
            ..RunConfig::default()
        };
        let note = if places {
            "; needs --init-from an ImageNet-pretrained ResNet-50 (README), frozen but for one new Bottleneck block and the classifier"
        } else {
            ""
        };
        out.push(Preset {
            name: format!("{short}-arb"),
            description: format!("{short}, ResNet-50, arb (global counts, mixup 0.2), {epochs} epochs, batch {batch}, cosine lr 0.1, wd {wd}{note}"),
            config,
        });
    }
    out
}

/// Looks a preset up by name, or lists the valid names.
pub fn find(name: &str) -> Result<Preset, String> {
    let all = all();
    match all.iter().find(|p| p.name == name) {
        Some(p) => Ok(p.clone()),
        None => {
            let names: Vec<_> = all.iter().map(|p| p.name.as_str()).collect();
            Err(format!(
                "unknown preset `{name}`; `repro presets` lists them: {}",
                names.join(", ")
            ))
        }
    }
}

/// A published top-1 accuracy (%) for ResNet-32 on CIFAR-LT.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    pub method: &'static str,
    pub dataset: DatasetKind,
    pub imb: u32,
    pub top1: f64,
    pub source: &'static str,
}

const CE: &str = "cross-entropy baseline as reported in the long-tail literature (figures from shared/spec/protocol.md)";
const FOCAL: &str = "Lin et al. 2017 (figures from shared/spec/protocol.md)";
const LDAM: &str = "Cao et al. 2019, LDAM-DRW (figures from shared/spec/protocol.md)";
const LA: &str = "Menon et al. 2021, logit adjustment (figures from shared/spec/protocol.md)";
const MISLAS: &str = "Zhong et al. 2021, MiSLAS (figures from shared/spec/protocol.md)";

/// The baselines of `shared/spec/protocol.md` ("Numbers to compare against").
pub fn published() -> Vec<Published> {
    use DatasetKind::{Cifar100Lt as C100, Cifar10Lt as C10};
    let rows: [(&str, &str, DatasetKind, [Option<f64>; 3]); 12] = [
        (
            "cross-entropy",
            CE,
            C10,
            [Some(70.4), Some(74.8), Some(86.4)],
        ),
        ("cross-entropy", CE, C100, [Some(38.3), Some(43.9), None]),
        ("focal", FOCAL, C10, [Some(71.6), Some(77.9), None]),
        ("focal", FOCAL, C100, [Some(37.2), Some(41.8), None]),
        ("LDAM-DRW", LDAM, C10, [Some(77.0), None, Some(88.2)]),
        ("LDAM-DRW", LDAM, C100, [Some(42.0), None, Some(58.7)]),
        ("logit adjustment", LA, C10, [Some(80.9), None, None]),
        ("logit adjustment", LA, C100, [Some(43.9), None, None]),
        (
            "MiSLAS stage 1 (mixup)",
            MISLAS,
            C10,
            [Some(72.8), Some(78.1), Some(87.6)],
        ),
        (
            "MiSLAS stage 1 (mixup)",
            MISLAS,
            C100,
            [Some(39.5), Some(45.4), Some(59.1)],
        ),
        (
            "MiSLAS two-stage",
            MISLAS,
            C10,
            [Some(82.1), Some(85.7), Some(90.0)],
        ),
        (
            "MiSLAS two-stage",
            MISLAS,
            C100,
            [Some(47.0), Some(52.3), Some(63.2)],
        ),
    ];
    let mut out = Vec::new();
    for (method, source, dataset, tops) in rows {
        for (imb, top1) in [100, 50, 10].into_iter().zip(tops) {
            if let Some(top1) = top1 {
                out.push(Published {
                    method,
                    dataset,
                    imb,
                    top1,
                    source,
                });
            }
        }
    }
    out
}
