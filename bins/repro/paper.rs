//! `repro paper`: the CIFAR-LT grid of every loss the protocol compares, then one table
//! (markdown, CSV, JSON) of arbor's runs beside the published figures, with a verdict.
//!
//! A finished run is reused only when its `config.json` equals the configuration this
//! invocation would train (else the error names the differing keys; `--force` retrains);
//! an interrupted one with the same configuration continues from its checkpoint.
use crate::cli::RunArgs;
use arbor_models::config::{DatasetKind, RunConfig};
use arbor_models::presets::{self, Preset};
use arbor_models::train::{self, report::RunResult, CONFIG_FILE, RESULTS_FILE};
use std::path::{Path, PathBuf};

/// The protocol's epochs; a grid with fewer is marked "short" and gets no verdict.
const PROTOCOL_EPOCHS: usize = 200;
/// Best-epoch top-1 within this many points of the published figure counts as reproduced.
const REPRODUCED_WITHIN: f64 = 1.0;

/// Preset suffix, the method's name in the table, and the published row it answers to.
const METHODS: [(&str, &str, Option<&str>); 8] = [
    ("ce", "cross-entropy", Some("cross-entropy")),
    ("focal", "focal", Some("focal")),
    ("cb", "class-balanced", None),
    ("ldam-drw", "LDAM-DRW", Some("LDAM-DRW")),
    ("bsm", "balanced softmax", None),
    ("arb", "ARB (batch counts)", None),
    ("arb-ugcc", "ARB (global counts)", None),
    ("arb-mixup", "ARB + mixup", None),
];

/// The CIFAR presets, or those `only` names (each must be a CIFAR preset).
pub fn select(only: &[String]) -> Result<Vec<Preset>, String> {
    let cifar: Vec<Preset> = presets::all()
        .into_iter()
        .filter(|p| !p.config.dataset.is_large_scale())
        .collect();
    if only.is_empty() {
        return Ok(cifar);
    }
    only.iter()
        .map(|name| {
            cifar.iter().find(|p| &p.name == name).cloned().ok_or_else(|| {
                format!("--only {name}: not a CIFAR preset of the grid (`repro presets` lists them)")
            })
        })
        .collect()
}

/// The keys whose values differ between a run folder's `config.json` and `cfg`. A key
/// added since the run was saved reads as its default, so leaving it there is no change.
pub fn differing_keys(dir: &Path, cfg: &RunConfig) -> Result<Vec<String>, String> {
    let path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let saved: RunConfig = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not an arbor run configuration ({e})", path.display()))?;
    Ok(train::run_dir::differing_keys(
        &saved,
        cfg,
        &[],
        ("saved", "now"),
    ))
}

/// What to do with one preset's folder.
enum Plan {
    Reuse(Box<RunResult>),
    Train { resume: bool, force: bool },
}

fn plan(dir: &Path, cfg: &RunConfig, force: bool) -> Result<Plan, String> {
    if !dir.join(CONFIG_FILE).exists() {
        return Ok(Plan::Train {
            resume: false,
            force: dir.exists() && force,
        });
    }
    let diff = differing_keys(dir, cfg)?;
    if !diff.is_empty() {
        if force {
            return Ok(Plan::Train {
                resume: false,
                force: true,
            });
        }
        return Err(format!(
            "{} was trained with a different configuration (keys: {}); pass --force to retrain it or use another --out",
            dir.display(),
            diff.join(", ")
        ));
    }
    match std::fs::read(dir.join(RESULTS_FILE)) {
        Ok(bytes) => serde_json::from_slice::<RunResult>(&bytes)
            .map(|r| Plan::Reuse(Box::new(r)))
            .map_err(|e| format!("{}: {e}", dir.join(RESULTS_FILE).display())),
        // Unfinished: --resume continues from its checkpoint, or restarts a run that was
        // stopped before its first one.
        Err(_) => Ok(Plan::Train {
            resume: true,
            force: false,
        }),
    }
}

/// Training images of a CIFAR-LT preset (the protocol's per-class counts).
fn train_images(cfg: &RunConfig) -> usize {
    let (n_max, c) = match cfg.dataset {
        DatasetKind::Cifar10Lt => (5000, 10),
        _ => (500, 100),
    };
    arbor_models::data::longtail_counts(n_max, c, cfg.imb as f64)
        .map(|v| v.iter().sum())
        .unwrap_or(0)
}

/// Seconds the runs still to train should take at `img_per_s` (evaluation of the 10 000
/// test images counted as forward-only, a third of a training image's cost).
fn projected_s(todo: &[&RunConfig], img_per_s: f64) -> f64 {
    todo.iter()
        .map(|c| {
            let evals = c.epochs.div_ceil(c.eval_every) as f64;
            (train_images(c) * c.epochs) as f64 / img_per_s + evals * 10_000.0 / (3.0 * img_per_s)
        })
        .sum()
}

/// Trains one batch of random images a few times and returns images per second.
fn probe_throughput(cfg: &RunConfig) -> Result<f64, String> {
    use arbor_engine::ops::loss::Target;
    use arbor_engine::{optim::Sgd, DType, Tensor};
    let e = |e: &dyn std::fmt::Display| format!("throughput probe: {e}");
    let classes = if cfg.dataset == DatasetKind::Cifar10Lt {
        10
    } else {
        100
    };
    let model =
        arbor_models::resnet::ResNet::new(cfg.arch, classes, DType::F32, 0).map_err(|x| e(&x))?;
    let mut sgd = Sgd::new(model.parameters(), 0.01, 0.9, 0.0).map_err(|x| e(&x))?;
    let criterion = train::criterion_for(cfg, &vec![1; classes]).map_err(|x| e(&x))?;
    let b = cfg.batch.min(128);
    let x =
        Tensor::from_vec(vec![0.1f32; b * 3 * 32 * 32], vec![b, 3, 32, 32]).map_err(|x| e(&x))?;
    let target = Target::Hard((0..b).map(|i| i % classes).collect());
    let mut step = || -> Result<(), String> {
        let loss = criterion
            .loss(&model.forward(&x).map_err(|x| e(&x))?, &target, 1)
            .map_err(|x| e(&x))?;
        sgd.zero_grad();
        loss.backward().map_err(|x| e(&x))?;
        sgd.step().map_err(|x| e(&x))
    };
    step()?;
    let t0 = std::time::Instant::now();
    for _ in 0..3 {
        step()?;
    }
    Ok(3.0 * b as f64 / t0.elapsed().as_secs_f64())
}

fn hours(s: f64) -> String {
    let m = (s / 60.0).round() as u64;
    format!("{}h {:02}min", m / 60, m % 60)
}

/// The grid: plan every run (refusing changed configurations before training anything),
/// print the projected time, train what is missing, write the table.
pub fn run(root: &Path, only: &[String], args: &RunArgs) -> Result<(), String> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join("paper"));
    // One grid per folder at a time (each run inside also locks its own folder).
    let _lock = train::run_dir::lock(&out).map_err(|e| e.to_string())?;
    let mut grid = Vec::new();
    for p in select(only)? {
        let folder = match p.config.dataset {
            DatasetKind::Cifar10Lt => "cifar-10-batches-bin",
            _ => "cifar-100-binary",
        };
        let run_args = RunArgs {
            data: Some(root.join(folder)),
            out: None,
            ..args.clone()
        };
        let cfg = run_args.apply(p.config.clone())?;
        let dir = out.join(&p.name);
        let plan = plan(&dir, &cfg, args.force)?;
        grid.push((p, cfg, dir, plan, run_args));
    }
    let Some((_, first, ..)) = grid.first() else {
        return Err("no preset selected".into());
    };
    super::set_threads(first.threads)?;
    let todo: Vec<&RunConfig> = grid
        .iter()
        .filter(|g| matches!(g.3, Plan::Train { .. }))
        .map(|g| &g.1)
        .collect();
    if !todo.is_empty() {
        let rate = probe_throughput(todo[0])?;
        eprintln!(
            "paper: {} of {} runs to train; projected wall time {} at {rate:.0} img/s (measured on a {} batch here; resumed runs take less)",
            todo.len(),
            grid.len(),
            hours(projected_s(&todo, rate)),
            todo[0].arch
        );
    }
    let mut rows = Vec::new();
    for (p, cfg, dir, plan, run_args) in grid {
        let result = match plan {
            Plan::Reuse(r) => {
                eprintln!("paper: reusing {} (same configuration)", dir.display());
                *r
            }
            Plan::Train { resume, force } => {
                let a = RunArgs {
                    resume,
                    force,
                    ..run_args
                };
                match super::train_one(&cfg, &dir, &a)? {
                    Some(r) => r,
                    None => return Ok(()),
                }
            }
        };
        rows.push((p.name, result));
    }
    let files = crate::paper_table::write(&out, &rows)?;
    println!("{}", std::fs::read_to_string(&files[0]).unwrap_or_default());
    for f in files {
        println!("paper table: {}", f.display());
    }
    Ok(())
}

/// `(preset suffix, table name, published method)` of a preset name, and its dataset / IF.
pub fn method_of(
    name: &str,
) -> Option<(
    DatasetKind,
    u32,
    &'static str,
    &'static str,
    Option<&'static str>,
)> {
    let (ds, rest) = [DatasetKind::Cifar10Lt, DatasetKind::Cifar100Lt]
        .into_iter()
        .find_map(|d| {
            name.strip_prefix(&format!("{}-if", d.name()))
                .map(|r| (d, r))
        })?;
    let (imb, suffix) = rest.split_once('-')?;
    let (s, label, published) = METHODS.into_iter().find(|m| m.0 == suffix)?;
    Some((ds, imb.parse().ok()?, s, label, published))
}

pub fn methods() -> &'static [(&'static str, &'static str, Option<&'static str>)] {
    &METHODS
}

pub fn protocol() -> (usize, f64) {
    (PROTOCOL_EPOCHS, REPRODUCED_WITHIN)
}
