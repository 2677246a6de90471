//! Checkpoints: everything needed to continue a run exactly — weights, batch-norm
//! statistics, momentum buffers, the loader's position and the history — written with
//! bincode through a temporary file and a rename, so a kill never leaves a torn file.
use super::report::EpochLog;
use crate::config::RunConfig;
use crate::data::LoaderState;
use crate::error::{write_atomic, Error, Result};
use crate::layers::Named;
use arbor_engine::optim::SgdState;
use arbor_engine::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;

const MAGIC: &str = "arbor-checkpoint-v1";

#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    magic: String,
    pub config: RunConfig,
    /// Epochs completed.
    pub epoch: usize,
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub sgd: SgdState,
    pub loader: LoaderState,
    pub history: Vec<EpochLog>,
    /// Seconds spent so far (training + evaluation), and training images and seconds.
    pub wall_s: f64,
    pub train_images: u64,
    pub train_s: f64,
}

impl Checkpoint {
    #[allow(clippy::too_many_arguments)]
    pub fn capture(
        config: &RunConfig,
        epoch: usize,
        named: &[Named],
        sgd: SgdState,
        loader: LoaderState,
        history: &[EpochLog],
        wall_s: f64,
        train_images: u64,
        train_s: f64,
    ) -> Result<Self> {
        let tensors = named
            .iter()
            .map(|n| {
                Ok((
                    n.name.clone(),
                    n.tensor.dims().to_vec(),
                    n.tensor.to_vec::<f32>()?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Checkpoint {
            magic: MAGIC.into(),
            config: config.clone(),
            epoch,
            tensors,
            sgd,
            loader,
            history: history.to_vec(),
            wall_s,
            train_images,
            train_s,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = bincode::serialize(self)
            .map_err(|e| Error::file(path, format!("cannot encode checkpoint: {e}")))?;
        write_atomic(path, &bytes)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let ck: Checkpoint = bincode::deserialize(&bytes)
            .map_err(|e| Error::file(path, format!("not a readable arbor checkpoint ({e})")))?;
        if ck.magic != MAGIC {
            return Err(Error::file(
                path,
                format!("checkpoint format `{}`, expected `{MAGIC}`", ck.magic),
            ));
        }
        Ok(ck)
    }

    /// Copies the saved values into the model's tensors (matched by name and shape).
    pub fn restore(&self, named: &[Named], path: &Path) -> Result<()> {
        if named.len() != self.tensors.len() {
            return Err(Error::file(
                path,
                format!(
                    "{} tensors saved, the model has {}",
                    self.tensors.len(),
                    named.len()
                ),
            ));
        }
        for (n, (name, dims, values)) in named.iter().zip(&self.tensors) {
            if &n.name != name || n.tensor.dims() != dims.as_slice() {
                return Err(Error::file(
                    path,
                    format!(
                        "saved {name} {dims:?} does not match the model's {} {:?}",
                        n.name,
                        n.tensor.dims()
                    ),
                ));
            }
            n.tensor
                .assign(&Tensor::from_vec(values.clone(), dims.clone())?)?;
        }
        Ok(())
    }
}
