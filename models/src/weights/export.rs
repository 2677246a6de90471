//! `repro export`: a run folder's weights as one safetensors file. `checkpoint.bin` stays
//! the resume format (it also holds momentum, the loader's place and the history).
use super::{decode, save, HostTensor, WeightsMeta};
use crate::error::{write_atomic, Error, Result};
use crate::train::checkpoint::Checkpoint;
use crate::train::hooks::BEST_FILE;
use crate::train::CHECKPOINT_FILE;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which of a run's weights to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The last completed epoch (from `checkpoint.bin`).
    Final,
    /// The best evaluated epoch (`best.safetensors`, kept by the trainer).
    Best,
}

impl FromStr for Which {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "final" => Ok(Which::Final),
            "best" => Ok(Which::Best),
            other => Err(format!("unknown `{other}` (expected final or best)")),
        }
    }
}

/// Default output: `RUN_DIR/model.safetensors`.
pub fn default_out(run: &Path) -> PathBuf {
    run.join("model.safetensors")
}

/// Writes `run`'s `which` weights to `out`; returns the epoch they are from.
pub fn export_run(run: &Path, which: Which, out: &Path) -> Result<Option<usize>> {
    if !run.is_dir() {
        return Err(Error::Config(format!(
            "run folder {} does not exist",
            run.display()
        )));
    }
    match which {
        Which::Final => {
            let path = run.join(CHECKPOINT_FILE);
            if !path.exists() {
                return Err(Error::Config(format!(
                    "{}: no checkpoint (has the run finished an epoch?)",
                    path.display()
                )));
            }
            let ck = Checkpoint::load(&path)?;
            let tensors: Vec<HostTensor> = ck
                .tensors
                .iter()
                .map(|(name, dims, values)| HostTensor {
                    name: name.clone(),
                    dims: dims.clone(),
                    values: values.clone(),
                })
                .collect();
            let classes = tensors
                .iter()
                .find(|t| t.name == "fc.weight")
                .and_then(|t| t.dims.first().copied())
                .ok_or_else(|| Error::file(&path, "holds no fc.weight"))?;
            let meta = WeightsMeta {
                epoch: Some(ck.epoch),
                which: Some("final".into()),
                ..WeightsMeta::for_run(&ck.config, classes)
            };
            save(out, &tensors, &meta)?;
            Ok(Some(ck.epoch))
        }
        Which::Best => {
            let path = run.join(BEST_FILE);
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::file(
                    &path,
                    format!("{e}: the run has kept no best weights yet (it writes them when an evaluation improves); use --which final"),
                )
            })?;
            let file = decode(&bytes).map_err(|d| Error::file(&path, d))?;
            write_atomic(out, &bytes)?;
            Ok(file.metadata.get("epoch").and_then(|e| e.parse().ok()))
        }
    }
}
