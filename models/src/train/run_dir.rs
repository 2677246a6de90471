//! The run folder: what `--out` may name, who may write it, and how a run picks up after a
//! kill. What it guarantees:
//!
//! - **Nothing of yours is deleted.** `--force` replaces only a run folder (one holding
//!   arbor's `config.json` or a readable `checkpoint.bin`, or an empty one), and then
//!   deletes only the files arbor writes ([`RUN_FILES`]); a folder holding anything else is
//!   refused with its name, and nothing is touched. The folder itself is kept, so
//!   `--out . --force` works on a run in the current directory.
//! - **One process per folder.** [`lock`] holds an OS lock on `repro.lock` for the whole
//!   run; it is released when the process exits, however it exits. A second `repro` on the
//!   same folder stops at once and names the holder.
//! - **Recovery after any kill.** Every file is written through a temp file and a rename;
//!   checkpoints are checksummed ([`super::checkpoint`]). On `--resume` a complete, verified
//!   `checkpoint.bin.tmp` newer than `checkpoint.bin` (a kill between the write and the
//!   rename) is adopted and an incomplete one removed; a run killed before its first
//!   checkpoint starts again from epoch 1; the log is cut back to the checkpoint's epoch.
//! - **`config.json` always describes the checkpoint.** Missing, it is written again;
//!   present and different, the run stops and lists the differing keys.
use super::checkpoint::Checkpoint;
use super::{jsonl, RunOptions, CHECKPOINT_FILE, CONFIG_FILE, LOG_FILE, RESULTS_FILE};
use crate::config::RunConfig;
use crate::error::{temp_path, write_atomic, Error, Result};
use std::path::Path;

mod lock;

pub use lock::{check_not_in_use, lock, RunLock};

/// The lock file of a run (or comparison) folder.
pub const LOCK_FILE: &str = "repro.lock";
pub const INDICES_FILE: &str = "indices.json";

/// Every file arbor writes into a run folder: `--force` deletes these (and their `.tmp`
/// files) and nothing else.
pub const RUN_FILES: &[&str] = &[
    CONFIG_FILE,
    INDICES_FILE,
    LOG_FILE,
    CHECKPOINT_FILE,
    RESULTS_FILE,
    LOCK_FILE,
    super::hooks::BEST_FILE,
    crate::analysis::ANALYSIS_FILE,
    // What `repro export RUN_DIR` writes by default.
    "model.safetensors",
];

/// What an `--out` folder holds, as far as a run is concerned.
enum Found {
    /// Missing, or empty but for a lock file.
    Nothing,
    /// A run: its configuration, from `config.json` or else from its checkpoint.
    Run { config: Box<RunConfig> },
    /// Something that is not a run; the text says why.
    Other(String),
}

fn inspect(out: &Path) -> Result<Found> {
    if !out.exists() {
        return Ok(Found::Nothing);
    }
    if !out.is_dir() {
        return Ok(Found::Other("is a file, not a folder".into()));
    }
    let names = entries(out)?;
    if names.iter().all(|n| n == LOCK_FILE) {
        return Ok(Found::Nothing);
    }
    let config_path = out.join(CONFIG_FILE);
    if config_path.exists() {
        let bytes = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
        return Ok(match serde_json::from_slice::<RunConfig>(&bytes) {
            Ok(c) => Found::Run {
                config: Box::new(c),
            },
            Err(e) => Found::Other(format!(
                "holds a {CONFIG_FILE} that is not an arbor run configuration ({e})"
            )),
        });
    }
    // config.json deleted: a readable checkpoint still makes it a run.
    match pick_checkpoint(out) {
        Ok(Some((ck, _))) => Ok(Found::Run {
            config: Box::new(ck.config),
        }),
        _ => Ok(Found::Other(format!(
            "holds {} but no arbor {CONFIG_FILE} or readable {CHECKPOINT_FILE}",
            list(&names)
        ))),
    }
}

fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn list(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(|s| s.as_str()).collect();
    let more = names.len().saturating_sub(shown.len());
    let mut s = shown.join(", ");
    if more > 0 {
        s += &format!(" and {more} more");
    }
    s
}

fn is_run_file(name: &str) -> bool {
    let base = name.strip_suffix(".tmp").unwrap_or(name);
    RUN_FILES.contains(&base)
}

/// Where a run's checkpoint stands after a possible kill.
struct CheckpointFound {
    checkpoint: Checkpoint,
    /// The checkpoint is `checkpoint.bin.tmp` (complete, verified, newer than any
    /// `checkpoint.bin`): a kill came between its write and its rename.
    from_temp: bool,
}

/// The checkpoint to continue from: `checkpoint.bin`, or a complete verified temp file that
/// is newer. `Ok(None)`: there is none. A corrupt `checkpoint.bin` with no newer temp file
/// is an error naming it (and nothing is overwritten).
fn pick_checkpoint(out: &Path) -> Result<Option<(Checkpoint, bool)>> {
    let main = out.join(CHECKPOINT_FILE);
    let temp = temp_path(&main);
    let saved = main.exists().then(|| Checkpoint::load(&main));
    let pending = temp
        .exists()
        .then(|| Checkpoint::load(&temp))
        .and_then(|r| r.ok());
    match (saved, pending) {
        (Some(Ok(s)), Some(t)) if t.epoch > s.epoch => Ok(Some((t, true))),
        (Some(Ok(s)), _) => Ok(Some((s, false))),
        (_, Some(t)) => Ok(Some((t, true))),
        (Some(Err(e)), None) => Err(e),
        (None, None) => Ok(None),
    }
}

fn find_checkpoint(out: &Path) -> Result<Option<CheckpointFound>> {
    Ok(
        pick_checkpoint(out)?.map(|(checkpoint, from_temp)| CheckpointFound {
            checkpoint,
            from_temp,
        }),
    )
}

/// The keys in which two configurations differ (all but `ignore`), as
/// `key (A, B)` with the values as JSON.
pub fn differing_keys(
    a: &RunConfig,
    b: &RunConfig,
    ignore: &[&str],
    names: (&str, &str),
) -> Vec<String> {
    let as_map = |c: &RunConfig| match serde_json::to_value(c).expect("config serialises") {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a config serialises to an object"),
    };
    let (ma, mb) = (as_map(a), as_map(b));
    let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !ignore.contains(&k.as_str()))
        .filter(|k| ma.get(*k) != mb.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or("unset".into(), |v| v.to_string());
            format!(
                "{k} ({} {}, {} {})",
                names.0,
                show(ma.get(k)),
                names.1,
                show(mb.get(k))
            )
        })
        .collect()
}

/// A prepared output folder: its held lock, and the checkpoint to continue from.
pub struct Prepared {
    pub lock: RunLock,
    pub resume_from: Option<Checkpoint>,
}

/// Checks `out` against `opts`, takes its lock, recovers from a kill when resuming, and
/// leaves it holding `config.json` (and, when resuming, a log cut back to the checkpoint).
pub fn prepare(cfg: &RunConfig, out: &Path, opts: &RunOptions) -> Result<Prepared> {
    if let Found::Other(why) = inspect(out)? {
        return Err(Error::Config(if opts.force {
            format!(
                "--force replaces only an arbor run folder, and {} {why}; nothing was deleted",
                out.display()
            )
        } else {
            format!(
                "output folder {} {why}; choose another --out",
                out.display()
            )
        }));
    }
    let lock = lock(out)?;
    // Looked at again under the lock: another process may have changed it meanwhile.
    let found = inspect(out)?;
    let resume_from = match found {
        Found::Other(why) => {
            return Err(Error::Config(format!(
                "output folder {} {why}",
                out.display()
            )));
        }
        Found::Nothing if opts.resume => {
            return Err(Error::Config(format!(
                "--resume: {} holds no run to continue",
                out.display()
            )));
        }
        Found::Nothing => None,
        Found::Run { config } if opts.resume => resume(cfg, out, &config)?,
        Found::Run { .. } if opts.force => {
            clear_run(out)?;
            None
        }
        Found::Run { .. } => return Err(Error::Config(occupied_message(out)?)),
    };
    if resume_from.is_none() {
        write_config(out, cfg)?;
    }
    Ok(Prepared { lock, resume_from })
}

/// `config.json`: the configuration, plus the SIMD level the CPU kernels run at and the
/// instruction set of matrixmultiply's GEMM (`gemm_isa`: it picks its own). Both are
/// properties of the process, not flags, so they are not part of [`RunConfig`]'s
/// equality; reading the file back ignores them.
fn write_config(out: &Path, cfg: &RunConfig) -> Result<()> {
    let mut value = serde_json::to_value(cfg).expect("config serialises");
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("simd".into(), arbor_engine::cpu::simd::level_name().into());
        map.insert("gemm".into(), arbor_engine::cpu::matmul::gemm_isa().into());
    }
    let json = serde_json::to_vec_pretty(&value).expect("config serialises");
    write_atomic(&out.join(CONFIG_FILE), &json)
}

/// The `--resume` path: the checkpoint (adopting a newer complete temp file), the flags and
/// `config.json` checked against it, the log cut back to its epoch.
fn resume(cfg: &RunConfig, out: &Path, saved: &RunConfig) -> Result<Option<Checkpoint>> {
    let main = out.join(CHECKPOINT_FILE);
    let temp = temp_path(&main);
    let found = find_checkpoint(out)?;
    if found.as_ref().is_none_or(|f| !f.from_temp) && temp.exists() {
        // Incomplete or older than checkpoint.bin: a write that never finished.
        std::fs::remove_file(&temp).map_err(|e| Error::io(&temp, e))?;
    }
    let Some(found) = found else {
        // Killed before its first checkpoint: start again from epoch 1, same config.
        check_flags(cfg, saved, out, CONFIG_FILE)?;
        for f in [
            LOG_FILE,
            RESULTS_FILE,
            INDICES_FILE,
            crate::analysis::ANALYSIS_FILE,
            super::hooks::BEST_FILE,
        ] {
            remove_if_present(&out.join(f))?;
        }
        eprintln!(
            "{} has no checkpoint yet (stopped during epoch 1): starting again from epoch 1",
            out.display()
        );
        return Ok(None);
    };
    let ck = found.checkpoint;
    check_flags(cfg, &ck.config, out, CHECKPOINT_FILE)?;
    let config_path = out.join(CONFIG_FILE);
    if config_path.exists() {
        let diff = differing_keys(
            saved,
            &ck.config,
            &["epochs"],
            ("config.json", "checkpoint"),
        );
        if !diff.is_empty() {
            return Err(Error::Config(format!(
                "{} differs from its checkpoint in: {}; restore it, or delete it to have it written again from the checkpoint",
                config_path.display(),
                diff.join(", ")
            )));
        }
    }
    if found.from_temp {
        std::fs::rename(&temp, &main).map_err(|e| Error::io(&main, e))?;
        eprintln!(
            "adopted {} (epoch {}, complete and verified; the kill came before its rename)",
            temp.display(),
            ck.epoch
        );
    }
    if !config_path.exists() || saved.epochs != cfg.epochs {
        // Written again from the checkpoint's config (with --epochs as now given).
        write_config(out, cfg)?;
    }
    // A kill between a line's append and the checkpoint save left lines past ck.epoch.
    jsonl::truncate_to_epoch(&out.join(LOG_FILE), ck.epoch)?;
    crate::analysis::on_resume(out, ck.epoch)?;
    Ok(Some(ck))
}

/// `--resume` may change `--epochs` only; any other difference names its flags.
fn check_flags(cfg: &RunConfig, saved: &RunConfig, out: &Path, from: &str) -> Result<()> {
    let diff = differing_keys(saved, cfg, &["epochs"], ("saved", "given"));
    if diff.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "--resume: the flags differ from the run in {} (its {from}) in: {}; only --epochs may change",
        out.display(),
        diff.join(", ")
    )))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `--force` on a run folder: refuses if it holds anything arbor did not write, else
/// removes arbor's files (the held lock file stays).
fn clear_run(out: &Path) -> Result<()> {
    let names = entries(out)?;
    let foreign: Vec<String> = names.iter().filter(|n| !is_run_file(n)).cloned().collect();
    if !foreign.is_empty() {
        return Err(Error::Config(format!(
            "--force replaces only the files of an arbor run, and {} also holds {}; nothing was deleted (move them, or choose another --out)",
            out.display(),
            list(&foreign)
        )));
    }
    for n in names.iter().filter(|n| n.as_str() != LOCK_FILE) {
        remove_if_present(&out.join(n))?;
    }
    Ok(())
}

/// A plain rerun on a run folder: what is there, and what `--resume` would do with it.
fn occupied_message(out: &Path) -> Result<String> {
    let mut what = match find_checkpoint(out) {
        Ok(Some(f)) => {
            let ck = &f.checkpoint;
            let mut s = format!(
                "a checkpoint after epoch {} of {}",
                ck.epoch, ck.config.epochs
            );
            if f.from_temp {
                s += &format!(" in a complete {CHECKPOINT_FILE}.tmp that --resume will adopt");
            }
            s
        }
        Ok(None) => "no checkpoint yet (--resume starts it again from epoch 1)".into(),
        Err(e) => format!("an unreadable checkpoint ({e})"),
    };
    if out.join(RESULTS_FILE).exists() {
        what += ", finished";
    }
    Ok(format!(
        "output folder {} already holds a run ({what}); pass --resume to continue it or --force to replace it",
        out.display()
    ))
}
