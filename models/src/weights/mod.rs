//! Weights in the field's interchange format, safetensors, with torchvision's tensor names:
//! a file written here loads into a PyTorch model with `load_state_dict`, and a file
//! PyTorch wrote with `safetensors.torch.save_file` loads here.
//!
//! Float tensors are stored as F32; batch norm's `num_batches_tracked` as an I64 scalar,
//! the way PyTorch saves it. Reading checks every name, shape and dtype against the model
//! before it changes anything ([`load`]), so a file that does not fit leaves the model as
//! it was and the error lists the first mismatches.
pub mod export;
pub mod load;
pub mod meta;

pub use load::{load_into, LoadPolicy, LoadReport};
pub use meta::WeightsMeta;

use crate::error::{write_atomic, Error, Result};
use crate::resnet::ResNet;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// The counter PyTorch keeps as an integer; everything else is a float tensor.
pub const COUNTER_SUFFIX: &str = "num_batches_tracked";

/// One tensor on the host, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// A safetensors file read into host tensors (in the file's order of names, sorted).
#[derive(Clone, Debug)]
pub struct WeightsFile {
    pub tensors: Vec<HostTensor>,
    /// The file's `__metadata__` (string to string).
    pub metadata: HashMap<String, String>,
}

impl WeightsFile {
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

fn is_counter(name: &str) -> bool {
    name.ends_with(COUNTER_SUFFIX)
}

/// Every parameter and buffer of `model`, copied to the host as f32.
pub fn model_tensors(model: &ResNet) -> Result<Vec<HostTensor>> {
    let (params, buffers) = model.named();
    params
        .iter()
        .chain(&buffers)
        .map(|n| {
            Ok(HostTensor {
                name: n.name.clone(),
                dims: n.tensor.dims().to_vec(),
                values: n
                    .tensor
                    .to_vec_f64()?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
            })
        })
        .collect()
}

/// The bytes of a safetensors file holding `tensors` and `meta`.
pub fn encode(tensors: &[HostTensor], meta: &HashMap<String, String>) -> Result<Vec<u8>> {
    let raw: Vec<RawTensor> = tensors
        .iter()
        .map(|t| {
            let (dtype, bytes) = if is_counter(&t.name) {
                let v = t.values.iter().map(|&v| v.round() as i64);
                (Dtype::I64, v.flat_map(i64::to_le_bytes).collect())
            } else {
                (
                    Dtype::F32,
                    t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            };
            RawTensor {
                name: t.name.clone(),
                dtype,
                dims: t.dims.clone(),
                bytes,
            }
        })
        .collect();
    encode_raw(&raw, meta)
}

/// A tensor as safetensors stores it: little-endian bytes of `dtype`.
pub struct RawTensor {
    pub name: String,
    pub dtype: Dtype,
    pub dims: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// The bytes of a safetensors file holding `tensors` (any dtype) and `meta`.
pub fn encode_raw(tensors: &[RawTensor], meta: &HashMap<String, String>) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.dims.clone(), &t.bytes)
                .map(|v| (t.name.as_str(), v))
                .map_err(|e| Error::Config(format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(meta.clone()))
        .map_err(|e| Error::Config(format!("cannot encode safetensors: {e}")))
}

/// Writes `tensors` with `meta` to `path` (through a temporary file and a rename).
pub fn save(path: &Path, tensors: &[HostTensor], meta: &WeightsMeta) -> Result<()> {
    write_atomic(path, &encode(tensors, &meta.to_map())?)
}

/// Writes `model`'s weights to `path`.
pub fn save_model(path: &Path, model: &ResNet, meta: &WeightsMeta) -> Result<()> {
    save(path, &model_tensors(model)?, meta)
}

/// Reads a safetensors file; a truncated or malformed file, or a tensor whose dtype is
/// not F32 (I64 or I32 for `num_batches_tracked`), is an error naming file and tensor.
pub fn read(path: &Path) -> Result<WeightsFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes).map_err(|detail| Error::file(path, detail))
}

/// [`read`] on bytes; the error is the detail to attach to the file's name.
pub fn decode(bytes: &[u8]) -> std::result::Result<WeightsFile, String> {
    let unreadable = |e: safetensors::SafeTensorError| {
        format!("not a readable safetensors file ({e}); is it truncated?")
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(unreadable)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(unreadable)?;
    let mut tensors = Vec::with_capacity(st.len());
    for (name, view) in st.iter() {
        let data = view.data();
        let values: Vec<f32> = match (view.dtype(), is_counter(name)) {
            (Dtype::F32, _) => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            (Dtype::I64, true) => data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            (Dtype::I32, true) => data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as f32)
                .collect(),
            (other, counter) => {
                let want = if counter { "I64" } else { "F32" };
                return Err(format!(
                    "tensor {name} is {other:?}, expected {want} (in PyTorch, convert with .float() before saving)"
                ));
            }
        };
        tensors.push(HostTensor {
            name: name.to_string(),
            dims: view.shape().to_vec(),
            values,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(WeightsFile { tensors, metadata })
}
