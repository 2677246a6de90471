//! Readers for the CIFAR-10 and CIFAR-100 *binary* distributions.
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin` and
//! `test_batch.bin`, 10 000 records each of 1 label byte + 3072 pixel bytes.
//! CIFAR-100 (`cifar-100-binary/`): `train.bin` (50 000 records) and `test.bin`
//! (10 000), each record 1 coarse label byte + 1 fine label byte + 3072 pixel bytes; the
//! fine label is the class. Pixels are the R, G and B planes of a 32x32 image, row-major,
//! i.e. already CHW.

use std::path::{Path, PathBuf};

use super::{DataError, Dataset};

/// Which CIFAR variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// 10 classes.
    Cifar10,
    /// 100 fine classes (20 coarse superclasses, ignored except for validation).
    Cifar100,
}

/// Train or test split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 50 000 training images.
    Train,
    /// The 10 000 test images.
    Test,
}

/// Shape of a CIFAR image, CHW.
pub const CIFAR_SHAPE: [usize; 3] = [3, 32, 32];
const PIXELS: usize = 3 * 32 * 32;

/// Everything that differs between the two binary formats.
struct Layout {
    folder: &'static str,
    train_files: &'static [&'static str],
    test_files: &'static [&'static str],
    /// Bytes before the pixels; the class label is the last of them.
    header: usize,
    records_per_train_file: usize,
    num_classes: usize,
    /// CIFAR-100's coarse label, checked but not kept: `Some(20)`.
    coarse_classes: Option<u32>,
}

const CIFAR10: Layout = Layout {
    folder: "cifar-10-batches-bin",
    train_files: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test_files: &["test_batch.bin"],
    header: 1,
    records_per_train_file: 10_000,
    num_classes: 10,
    coarse_classes: None,
};

const CIFAR100: Layout = Layout {
    folder: "cifar-100-binary",
    train_files: &["train.bin"],
    test_files: &["test.bin"],
    header: 2,
    records_per_train_file: 50_000,
    num_classes: 100,
    coarse_classes: Some(20),
};

/// Every test file of both variants holds 10 000 records.
const RECORDS_PER_TEST_FILE: usize = 10_000;

impl CifarKind {
    fn layout(self) -> &'static Layout {
        match self {
            CifarKind::Cifar10 => &CIFAR10,
            CifarKind::Cifar100 => &CIFAR100,
        }
    }

    /// Number of classes: 10 or 100.
    pub fn num_classes(self) -> usize {
        self.layout().num_classes
    }

    /// Name of the folder the official archive unpacks to.
    pub fn folder_name(self) -> &'static str {
        self.layout().folder
    }
}

/// The folder holding the `.bin` files: `dir/<folder_name>` when that exists, else `dir`
/// itself, so callers may pass either the parent or the folder.
pub fn resolve_cifar_dir(kind: CifarKind, dir: &Path) -> PathBuf {
    let nested = dir.join(kind.folder_name());
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Loads one split of CIFAR-10 or CIFAR-100 from `dir` (see [`resolve_cifar_dir`]).
///
/// Checks each file's size (a whole number of records, at least one, and as many in each
/// file of the split as in its first) and every label's range; errors name the file and
/// the record index. Any record count is accepted so that smaller files in the same format
/// (a test's, a user's subset) load too; the official archives are checked by MD5 when
/// `repro data fetch` downloads them.
pub fn load_cifar(kind: CifarKind, dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let layout = kind.layout();
    let dir = resolve_cifar_dir(kind, dir);
    let (files, records_per_file) = match split {
        Split::Train => (layout.train_files, layout.records_per_train_file),
        Split::Test => (layout.test_files, RECORDS_PER_TEST_FILE),
    };
    let total = files.len() * records_per_file;
    let mut images = Vec::with_capacity(total * PIXELS);
    let mut labels = Vec::with_capacity(total);
    let mut first_file_records = None;
    for name in files {
        let records = read_file(
            &dir.join(name),
            layout,
            first_file_records,
            &mut images,
            &mut labels,
        )?;
        first_file_records.get_or_insert(records);
    }
    Dataset::new(images, labels, layout.num_classes, CIFAR_SHAPE)
}

/// Appends the records of one `.bin` file to `images` and `labels`; returns how many.
/// `expected_records`: the count of the split's first file, which this one must match.
fn read_file(
    path: &Path,
    layout: &Layout,
    expected_records: Option<usize>,
    images: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<usize, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let record_len = layout.header + PIXELS;
    if bytes.len() % record_len != 0 {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes is not a whole number of {record_len}-byte records \
                 (record {} is truncated)",
                bytes.len(),
                bytes.len() / record_len
            ),
        ));
    }
    let records = bytes.len() / record_len;
    if records == 0 {
        return Err(DataError::format(path, "holds no record"));
    }
    if let Some(expected) = expected_records.filter(|&e| e != records) {
        return Err(DataError::format(
            path,
            format!("holds {records} records, expected {expected} as in the split's first file"),
        ));
    }
    for (index, record) in bytes.chunks_exact(record_len).enumerate() {
        if let Some(coarse_classes) = layout.coarse_classes {
            let coarse = u32::from(record[0]);
            if coarse >= coarse_classes {
                return Err(DataError::format(
                    path,
                    format!("record {index}: coarse label {coarse} is not < {coarse_classes}"),
                ));
            }
        }
        let label = u32::from(record[layout.header - 1]);
        if label as usize >= layout.num_classes {
            return Err(DataError::format(
                path,
                format!(
                    "record {index}: label {label} is not < {}",
                    layout.num_classes
                ),
            ));
        }
        labels.push(label);
        images.extend_from_slice(&record[layout.header..]);
    }
    Ok(records)
}
