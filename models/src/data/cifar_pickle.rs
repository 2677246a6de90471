//! CIFAR's *Python* distributions (`cifar-10-batches-py/`, `cifar-100-python/`, what
//! torchvision downloads), read as data with `serde-pickle`: nothing in the file is ever
//! executed. Each file is a dict with `data` (a numpy uint8 array of N x 3072, the same
//! planar RGB rows as the binary files) and `labels` (CIFAR-10) or `fine_labels`
//! (CIFAR-100). The images and their order are those of the binary distribution.
//!
//! serde-pickle does not know numpy: the array's `_reconstruct` and `dtype` calls are
//! kept as opaque objects that their `BUILD` state replaces, so an array arrives as its
//! state tuple `(version, shape, dtype_state, fortran_order, raw_bytes)`, checked here.

use std::path::{Path, PathBuf};

use serde_pickle::{DeOptions, HashableValue, Value};

use super::cifar::{load_cifar, resolve_cifar_dir, CifarKind, Split, CIFAR_SHAPE};
use super::{DataError, Dataset};

const PIXELS: usize = 3 * 32 * 32;

/// Folder the Python archive unpacks to.
pub fn python_folder(kind: CifarKind) -> &'static str {
    match kind {
        CifarKind::Cifar10 => "cifar-10-batches-py",
        CifarKind::Cifar100 => "cifar-100-python",
    }
}

fn python_files(kind: CifarKind, split: Split) -> &'static [&'static str] {
    match (kind, split) {
        (CifarKind::Cifar10, Split::Train) => &[
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
        ],
        (CifarKind::Cifar10, Split::Test) => &["test_batch"],
        (CifarKind::Cifar100, Split::Train) => &["train"],
        (CifarKind::Cifar100, Split::Test) => &["test"],
    }
}

/// The Python folder under `dir` (or `dir` itself), if `dir` holds the Python distribution.
fn python_dir(kind: CifarKind, dir: &Path) -> Option<PathBuf> {
    let first = python_files(kind, Split::Test)[0];
    [dir.join(python_folder(kind)), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join(first).is_file())
}

/// Loads one split from `dir`: the binary distribution when it is there, else the
/// Python one, else the binary loader's error naming the missing file.
pub fn load_cifar_any(kind: CifarKind, dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let binary = resolve_cifar_dir(kind, dir);
    let binary_present = binary.join(if kind == CifarKind::Cifar10 {
        "test_batch.bin"
    } else {
        "test.bin"
    });
    match python_dir(kind, dir) {
        Some(py) if !binary_present.is_file() => load_cifar_python(kind, &py, split),
        _ => load_cifar(kind, dir, split),
    }
}

/// Loads one split of the Python distribution from the folder holding its files.
pub fn load_cifar_python(kind: CifarKind, dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let label_key = match kind {
        CifarKind::Cifar10 => "labels",
        CifarKind::Cifar100 => "fine_labels",
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in python_files(kind, split) {
        let path = dir.join(name);
        let file = std::fs::File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let value =
            serde_pickle::value_from_reader(std::io::BufReader::new(file), DeOptions::new())
                .map_err(|e| DataError::format(&path, format!("not a readable pickle: {e}")))?;
        let bad = |why: String| DataError::format(&path, why);
        let Value::Dict(dict) = value else {
            return Err(bad("expected a dict of `data` and labels".into()));
        };
        let data = field(&dict, "data").ok_or_else(|| bad("has no `data`".into()))?;
        let pixels = array_bytes(data).map_err(bad)?;
        let file_labels = field(&dict, label_key)
            .and_then(int_list)
            .ok_or_else(|| bad(format!("has no `{label_key}` list of integers")))?;
        if pixels.len() != file_labels.len() * PIXELS || file_labels.is_empty() {
            return Err(bad(format!(
                "{} labels but {} pixel bytes (expected {} x {PIXELS})",
                file_labels.len(),
                pixels.len(),
                file_labels.len()
            )));
        }
        for (index, &label) in file_labels.iter().enumerate() {
            if !(0..kind.num_classes() as i64).contains(&label) {
                return Err(bad(format!(
                    "record {index}: label {label} is not < {}",
                    kind.num_classes()
                )));
            }
            labels.push(label as u32);
        }
        images.extend_from_slice(pixels);
    }
    Dataset::new(images, labels, kind.num_classes(), CIFAR_SHAPE)
}

/// `dict[key]`, whether the key was pickled as Python 2 `str` (bytes) or Python 3 `str`.
fn field<'a>(
    dict: &'a std::collections::BTreeMap<HashableValue, Value>,
    key: &str,
) -> Option<&'a Value> {
    dict.get(&HashableValue::Bytes(key.as_bytes().to_vec()))
        .or_else(|| dict.get(&HashableValue::String(key.to_string())))
}

fn int_list(value: &Value) -> Option<Vec<i64>> {
    match value {
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .map(|v| match v {
                Value::I64(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The raw bytes of a pickled C-ordered uint8 numpy array of shape (N, 3072).
fn array_bytes(value: &Value) -> Result<&[u8], String> {
    let bad = || "`data` is not a uint8 numpy array of shape (N, 3072)".to_string();
    let Value::Tuple(state) = value else {
        return Err(bad());
    };
    let [_, Value::Tuple(shape), Value::Tuple(dtype), Value::Bool(fortran), Value::Bytes(raw)] =
        state.as_slice()
    else {
        return Err(bad());
    };
    // dtype state: (version, byte order, ..., itemsize, alignment, flags); uint8 is '|'.
    let item_size_one = matches!(dtype.get(5), Some(Value::I64(-1)) | Some(Value::I64(1)));
    let order_any = match dtype.get(1) {
        Some(Value::String(s)) => s == "|",
        Some(Value::Bytes(b)) => b == b"|",
        _ => false,
    };
    match shape.as_slice() {
        [Value::I64(_), Value::I64(3072)] if !fortran && item_size_one && order_any => Ok(raw),
        _ => Err(bad()),
    }
}
