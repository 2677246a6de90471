//! Checkpoints: everything needed to continue a run exactly — weights, batch-norm
//! statistics, momentum buffers, the loader's position and the history — written with
//! bincode through a temporary file and a rename, so a kill never leaves a torn file.
//!
//! On disk: an 8-byte magic `ARBORCKP`, the format version (u32), the payload's length
//! (u64) and its CRC-32 (u32), all little-endian, then the bincode payload. A file whose
//! length or checksum does not match its header is refused before anything is decoded,
//! so a torn or bit-flipped checkpoint can never be trained on.
use super::report::EpochLog;
use crate::config::RunConfig;
use crate::data::LoaderState;
use crate::error::{write_atomic, Error, Result};
use crate::layers::Named;
use arbor_engine::optim::SgdState;
use arbor_engine::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;

const MAGIC: &[u8; 8] = b"ARBORCKP";
/// Version 1 was a bare bincode payload starting with the string `arbor-checkpoint-v1`;
/// version 2 had a `RunConfig` without the data, weights and analysis fields (bincode is
/// not self-describing, so every change of the payload's types bumps this).
pub const FORMAT_VERSION: u32 = 3;
const HEADER_LEN: usize = 8 + 4 + 8 + 4;

#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
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

    /// Writes the checkpoint atomically (temp file + rename); a failed write leaves the
    /// previous checkpoint in place and no temp file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let payload = bincode::serialize(self)
            .map_err(|e| Error::file(path, format!("cannot encode checkpoint: {e}")))?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        write_atomic(path, &bytes)
    }

    /// Reads and verifies a checkpoint: magic, version, length and checksum first, then
    /// the payload. Every refusal names the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::decode(&bytes).map_err(|detail| Error::file(path, detail))
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "truncated checkpoint: {} bytes, shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            ));
        }
        let (header, payload) = bytes.split_at(HEADER_LEN);
        if &header[..8] != MAGIC {
            let v1 = bytes.len() > 27 && &bytes[8..27] == b"arbor-checkpoint-v1";
            return Err(if v1 {
                "a checkpoint of format version 1 (before checksums), which this arbor no longer reads; start the run again with --force".into()
            } else {
                "not an arbor checkpoint (no ARBORCKP header)".into()
            });
        }
        let word = |at: usize, n: usize| {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&header[at..at + n]);
            u64::from_le_bytes(b)
        };
        let version = word(8, 4) as u32;
        if version != FORMAT_VERSION {
            return Err(format!(
                "checkpoint format version {version}; this arbor reads version {FORMAT_VERSION}"
            ));
        }
        let promised = word(12, 8);
        if promised != payload.len() as u64 {
            return Err(format!(
                "truncated or padded checkpoint: the header promises {promised} payload bytes, the file holds {}",
                payload.len()
            ));
        }
        let stored = word(20, 4) as u32;
        let computed = crc32fast::hash(payload);
        if stored != computed {
            return Err(format!(
                "corrupt checkpoint: CRC-32 of the contents is {computed:08x}, the header says {stored:08x}"
            ));
        }
        bincode::deserialize(payload).map_err(|e| {
            format!("checkpoint passes its checksum but cannot be decoded ({e}); was it written by another arbor version?")
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            config: RunConfig::default(),
            epoch: 3,
            tensors: vec![("fc.weight".into(), vec![2, 2], vec![1.0, -2.0, 0.5, 4.0])],
            sgd: SgdState::default(),
            loader: LoaderState::default(),
            history: Vec::new(),
            wall_s: 1.5,
            train_images: 10,
            train_s: 1.0,
        }
    }

    fn encoded(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("checkpoint.bin");
        sample().save(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        (p, bytes)
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("arbor-ck-{name}-{}", std::process::id()))
    }

    #[test]
    fn round_trips() {
        let d = scratch("rt");
        let (p, _) = encoded(&d);
        let ck = Checkpoint::load(&p).unwrap();
        assert_eq!(ck.epoch, 3);
        assert_eq!(ck.tensors, sample().tensors);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn every_single_byte_flip_is_refused() {
        let d = scratch("flip");
        let (p, bytes) = encoded(&d);
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            std::fs::write(&p, &b).unwrap();
            let err = match Checkpoint::load(&p) {
                Ok(_) => panic!("flipped byte {at} of {} accepted", bytes.len()),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("checkpoint.bin"), "{err}");
        }
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn truncations_name_a_reason() {
        let d = scratch("trunc");
        let (p, bytes) = encoded(&d);
        for len in [0, 5, HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&p, &bytes[..len]).unwrap();
            let err = Checkpoint::load(&p)
                .err()
                .expect("truncated file accepted")
                .to_string();
            assert!(err.contains("truncated"), "{len} bytes: {err}");
        }
        let _ = std::fs::remove_dir_all(d);
    }
}
