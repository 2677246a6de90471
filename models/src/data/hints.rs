//! Where each dataset's files are expected by default, and what to tell a user who has
//! not got them yet: every "no data" error says how to get the data.

use std::path::{Path, PathBuf};

use crate::config::DatasetKind;

/// Where `repro data fetch` puts CIFAR, and where the CIFAR datasets look without `--data`.
pub const DEFAULT_DATA_DIR: &str = "data";

/// The folder a run reads when `--data` is not given: `./data` for CIFAR, else none.
pub fn default_data_dir(kind: DatasetKind) -> Option<PathBuf> {
    matches!(kind, DatasetKind::Cifar10Lt | DatasetKind::Cifar100Lt)
        .then(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// How to get the data of `kind`, as one sentence for an error message.
pub fn how_to_get(kind: DatasetKind) -> String {
    match kind {
        DatasetKind::SyntheticLt => "synthetic-lt is generated, it needs no files".into(),
        DatasetKind::Cifar10Lt | DatasetKind::Cifar100Lt => {
            let name = if kind == DatasetKind::Cifar10Lt {
                "cifar10"
            } else {
                "cifar100"
            };
            format!(
                "run `repro data fetch {name}` (downloads into ./{DEFAULT_DATA_DIR}, the default \
                 --data), or pass --data DIR holding the binary or the Python distribution"
            )
        }
        DatasetKind::Folder => {
            "pass --data DIR holding train/<class>/*.png|jpg and test/<class>/* (or val/)".into()
        }
        _ => format!(
            "pass --data DIR holding the images and the list files of {kind} \
             (README, \"Getting the data\", says where they come from)"
        ),
    }
}

/// The error for a run of `kind` whose `--data` is not given and has no default.
pub fn missing_data(kind: DatasetKind, data: Option<&Path>) -> Option<String> {
    if kind == DatasetKind::SyntheticLt || data.is_some() || default_data_dir(kind).is_some() {
        return None;
    }
    Some(format!(
        "--data DIR is required for {kind}: {}",
        how_to_get(kind)
    ))
}

/// The error for a data folder that does not exist.
pub fn no_such_folder(kind: DatasetKind, dir: &Path, given: bool) -> String {
    let origin = if given {
        "--data"
    } else {
        "the default --data"
    };
    format!(
        "data folder {} ({origin}) does not exist: {}",
        dir.display(),
        how_to_get(kind)
    )
}
