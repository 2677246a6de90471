//! Copying a weights file into a model: every name, shape and dtype is checked first, so a
//! file that does not fit changes nothing and the error lists what differs.
use super::{is_counter, WeightsFile};
use crate::error::{Error, Result};
use crate::resnet::ResNet;
use arbor_engine::Tensor;
use std::collections::HashSet;
use std::path::Path;

/// How strictly a file must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadPolicy {
    /// Every tensor of the model, and nothing else (evaluation, fine-tuning a run's own
    /// weights).
    Exact,
    /// A starting point (`--init-from`): a classifier of another class count, or a block
    /// the file does not have (`resnet50-places`' new block), keeps its fresh
    /// initialisation.
    Init,
}

/// What loading did besides copying: the notes a user should see.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub loaded: usize,
    pub notes: Vec<String>,
}

/// At most this many mismatches are spelled out in the error.
const SHOWN: usize = 10;

/// Copies `file` into `model` under `policy`. `path` names the file in messages.
///
/// A missing `num_batches_tracked` reads as 0, as PyTorch's own `load_state_dict` does for
/// checkpoints written before the counter existed (torchvision's original ResNet-50 file
/// is one).
pub fn load_into(
    model: &ResNet,
    file: &WeightsFile,
    path: &Path,
    policy: LoadPolicy,
) -> Result<LoadReport> {
    let (params, buffers) = model.named();
    let expected: Vec<_> = params.iter().chain(&buffers).collect();
    let added: Vec<String> = model
        .head_prefixes()
        .into_iter()
        .filter(|p| p != "fc.")
        .collect();
    let mut report = LoadReport::default();
    let mut mismatches = Vec::new();
    let mut copies = Vec::new();

    // The classifier is replaced as a whole when its class count differs.
    let fc_differs = |name: &str| {
        file.get(name)
            .zip(expected.iter().find(|n| n.name == name))
            .is_some_and(|(t, n)| t.dims != n.tensor.dims())
    };
    let fc_missing = file.get("fc.weight").is_none() || file.get("fc.bias").is_none();
    let reinit_fc = policy == LoadPolicy::Init
        && (fc_missing || fc_differs("fc.weight") || fc_differs("fc.bias"));
    if reinit_fc {
        let found = match file.get("fc.weight") {
            Some(t) => format!("{:?}", t.dims),
            None => "missing".into(),
        };
        report.notes.push(format!(
            "classifier re-initialised: the file's fc.weight is {found}, {} with {} classes needs [{}, {}]",
            model.arch, model.num_classes, model.num_classes, model.feature_dim
        ));
    }
    let mut kept_new = 0;
    let mut zeroed = Vec::new();
    for n in &expected {
        let is_fc = n.name.starts_with("fc.");
        match file.get(&n.name) {
            Some(_) if reinit_fc && is_fc => {}
            Some(t) if t.dims == n.tensor.dims() => copies.push((n, t)),
            Some(t) => mismatches.push(format!(
                "{}: expected {:?}, found {:?}",
                n.name,
                n.tensor.dims(),
                t.dims
            )),
            None if policy == LoadPolicy::Init
                && added.iter().any(|p| n.name.starts_with(p.as_str())) =>
            {
                kept_new += 1;
            }
            None if is_counter(&n.name) => zeroed.push(n),
            None if reinit_fc && is_fc => {}
            None => mismatches.push(format!(
                "{}: expected {:?}, missing from the file",
                n.name,
                n.tensor.dims()
            )),
        }
    }
    let known: HashSet<&str> = expected.iter().map(|n| n.name.as_str()).collect();
    for t in &file.tensors {
        if !known.contains(t.name.as_str()) {
            mismatches.push(format!(
                "{}: found {:?}, not a tensor of {}",
                t.name, t.dims, model.arch
            ));
        }
    }
    if !mismatches.is_empty() {
        let total = mismatches.len();
        mismatches.truncate(SHOWN);
        return Err(Error::file(
            path,
            format!(
                "does not fit {} with {} classes: {total} mismatch{} (first: {})",
                model.arch,
                model.num_classes,
                if total == 1 { "" } else { "es" },
                mismatches.join("; ")
            ),
        ));
    }
    for (n, t) in &copies {
        let host =
            Tensor::from_vec(t.values.clone(), t.dims.clone())?.to_dtype(n.tensor.dtype())?;
        n.tensor.assign(&host)?;
    }
    for n in &zeroed {
        n.tensor
            .assign(&Tensor::zeros(n.tensor.shape().clone(), n.tensor.dtype()))?;
    }
    report.loaded = copies.len();
    if kept_new > 0 {
        report.notes.push(format!(
            "{kept_new} tensors of the new block(s) {} are not in the file and keep their fresh initialisation",
            added.join(", ")
        ));
    }
    if !zeroed.is_empty() {
        report.notes.push(format!(
            "{} num_batches_tracked counters are not in the file and start at 0",
            zeroed.len()
        ));
    }
    Ok(report)
}
