//! `repro`: reproduce the ARB-Loss paper's long-tailed experiments.
//!
//! `repro` alone runs the synthetic demo; `repro train|compare|preset|presets|paper` are
//! described by `repro --help`. Errors print one line naming what is wrong and exit 1.
mod analyze;
mod analyze_plots;
mod cli;
mod data_cmd;
mod paper;
mod paper_table;
mod report;
mod weights_cmd;

use arbor_models::config::{CountsMode, DatasetKind, RunConfig};
use arbor_models::presets;
use arbor_models::resnet::Arch;
use arbor_models::train::{self, report::RunResult, Outcome, RunOptions};
use clap::Parser;
use cli::{Cli, Command, RunArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Training allocates and frees the same large activation buffers every step; mimalloc keeps
/// them for reuse where the system allocator would unmap and re-fault them each time.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    arbor::alloc::keep_freed_memory();
    let cli = Cli::parse();
    // A bad ARBOR_SIMD is reported here, before any kernel could run.
    if let Err(e) = arbor::engine::cpu::simd::try_level() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match dispatch(cli.command.unwrap_or(Command::Demo(RunArgs::default()))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::Presets => {
            for p in presets::all() {
                println!("{:<28} {}", p.name, p.description);
            }
            Ok(())
        }
        Command::Train(args) => {
            let cfg = args.apply(RunConfig::default())?;
            set_threads(cfg.threads)?;
            let out = args.out.clone().unwrap_or_else(|| default_out(&cfg));
            train_one(&cfg, &out, &args).map(|_| ())
        }
        Command::Preset { name, run } => {
            let preset = presets::find(&name)?;
            let cfg = run.apply(preset.config)?;
            set_threads(cfg.threads)?;
            let out = run
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&name));
            train_one(&cfg, &out, &run).map(|_| ())
        }
        Command::Compare { losses, run } => {
            let base = run.apply(RunConfig::default())?;
            set_threads(base.threads)?;
            let out = run
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(format!("compare-{}", base.dataset)));
            compare(&base, &losses, &out, &run)
        }
        Command::Demo(run) => demo(&run),
        Command::Export(a) => weights_cmd::export(&a),
        Command::Eval(a) => weights_cmd::eval(&a),
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Analyze { runs, out } => {
            let out = out.unwrap_or_else(|| match runs.as_slice() {
                [one] => one.join("analysis"),
                _ => PathBuf::from("runs").join("analysis"),
            });
            for f in analyze::run(&runs, &out)? {
                println!("{}", f.display());
            }
            Ok(())
        }
        Command::Paper {
            data_root,
            only,
            run,
        } => paper::run(&data_root, &only, &run),
    }
}

/// Builds rayon's global pool once; `0` keeps rayon's default (RAYON_NUM_THREADS or all cores).
fn set_threads(threads: usize) -> Result<(), String> {
    if threads == 0 {
        return Ok(());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| format!("--threads {threads}: {e}"))
}

fn default_out(c: &RunConfig) -> PathBuf {
    PathBuf::from("runs").join(format!(
        "{}-if{}-{}-{}-{}-s{}",
        c.dataset, c.imb, c.arch, c.loss, c.counts, c.seed
    ))
}

fn options(args: &RunArgs) -> RunOptions {
    RunOptions {
        resume: args.resume,
        force: args.force,
        stop_after: args.stop_after,
        quiet: args.quiet,
    }
}

/// Trains one run and prints where its files are; `None` when stopped early on request.
fn train_one(cfg: &RunConfig, out: &Path, args: &RunArgs) -> Result<Option<RunResult>, String> {
    eprintln!(
        "training {} IF{} {} with {} ({} counts{}) for {} epochs -> {}",
        cfg.dataset,
        cfg.imb,
        cfg.arch,
        cfg.loss,
        cfg.counts,
        if cfg.mixup > 0.0 {
            format!(", mixup {}", cfg.mixup)
        } else {
            String::new()
        },
        cfg.epochs,
        out.display()
    );
    match train::run(cfg, out, &options(args)).map_err(|e| e.to_string())? {
        Outcome::Stopped { epoch } => {
            eprintln!(
                "stopped after epoch {epoch}; continue with --resume --out {}",
                out.display()
            );
            Ok(None)
        }
        Outcome::Finished(r) => {
            println!("{}", report::one_line(&r));
            println!("results: {}", out.join(train::RESULTS_FILE).display());
            Ok(Some(*r))
        }
    }
}

/// `loss` or `loss:counts` -> (label, config).
fn variant(base: &RunConfig, spec: &str) -> Result<(String, RunConfig), String> {
    let (loss, counts) = match spec.split_once(':') {
        Some((l, c)) => (
            l,
            Some(
                c.parse::<CountsMode>()
                    .map_err(|e| format!("--losses {spec}: {e}"))?,
            ),
        ),
        None => (spec, None),
    };
    if loss.trim().is_empty() {
        return Err(format!("--losses: an empty loss name in `{spec}`"));
    }
    loss.parse::<arbor_models::loss::LossKind>()
        .map_err(|e| format!("--losses {spec}: {e}"))?;
    let mut cfg = RunArgs {
        loss: Some(loss.to_string()),
        ..RunArgs::default()
    }
    .apply(base.clone())?;
    if let Some(c) = counts {
        cfg.counts = c;
    }
    let label = match (loss, counts) {
        ("arb", _) => format!("arb-{}", cfg.counts),
        _ => loss.to_string(),
    };
    Ok((label, cfg))
}

fn compare(base: &RunConfig, losses: &[String], out: &Path, args: &RunArgs) -> Result<(), String> {
    if losses.is_empty() || losses.iter().all(|l| l.trim().is_empty()) {
        return Err("--losses: give at least one loss, e.g. --losses ce,arb".into());
    }
    let variants = losses
        .iter()
        .map(|l| variant(base, l))
        .collect::<Result<Vec<_>, _>>()?;
    // Every variant is checked before the first one trains.
    for (i, (label, _)) in variants.iter().enumerate() {
        if let Some(j) = variants[..i].iter().position(|(l, _)| l == label) {
            return Err(format!(
                "--losses: `{}` and `{}` are the same run ({label}); give each loss once",
                losses[j], losses[i]
            ));
        }
    }
    // One comparison per folder at a time (each run inside also locks its own folder).
    let _lock = train::run_dir::lock(out).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (label, cfg) in &variants {
        let dir = out.join(label);
        if let Some(r) = train_one(cfg, &dir, args)? {
            rows.push(report::Row {
                label: label.clone(),
                dir,
                result: r,
            });
        }
    }
    if rows.len() < variants.len() {
        return Ok(());
    }
    let files = report::write_comparison(out, &rows)?;
    println!("\n{}", report::markdown(&rows));
    println!("comparison written to:");
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}

/// The default command: synthetic-lt, CE vs ARB (batch) vs ARB (global), a short schedule on
/// ResNet-8, into a fresh time-stamped folder (so a second demo never overwrites the first).
fn demo(args: &RunArgs) -> Result<(), String> {
    let base = RunConfig {
        dataset: DatasetKind::SyntheticLt,
        arch: Arch::ResNet8,
        imb: 100,
        epochs: 30,
        batch: 128,
        lr: 0.1,
        wd: 5e-4,
        schedule: "cosine".into(),
        synthetic_max: 500,
        num_classes_synthetic: 10,
        eval_every: 5,
        ..RunConfig::default()
    };
    let base = args.apply(base)?;
    set_threads(base.threads)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("demo-{stamp}")));
    eprintln!(
        "demo: synthetic-lt ({} classes, IF {}), {} for {} epochs; cross-entropy vs ARB-Loss (batch and global counts)",
        base.num_classes_synthetic, base.imb, base.arch, base.epochs
    );
    compare(
        &base,
        &["ce".into(), "arb:batch".into(), "arb:global".into()],
        &out,
        args,
    )
}
