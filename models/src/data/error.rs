//! The one error type of the data pipeline.
//!
//! Every variant carries enough context to act on without a debugger: the file (and, for
//! record-structured files, the record index or line number) or the parameter at fault.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a data operation failed.
#[derive(Debug)]
pub enum DataError {
    /// The operating system refused to read or write `path`.
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `path` was read but its contents are not what the format requires.
    Format {
        /// The offending file.
        path: PathBuf,
        /// Where in the file and what is wrong, e.g. `record 17: label 12 is not < 10`.
        detail: String,
    },
    /// A parameter or an in-memory input is unusable (empty dataset, batch size 0, ...).
    Invalid(String),
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A format error in `path`.
    pub fn format(path: &Path, detail: impl Into<String>) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    /// An invalid parameter or input.
    pub fn invalid(detail: impl Into<String>) -> Self {
        DataError::Invalid(detail.into())
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Format { path, detail } => write!(f, "{}: {detail}", path.display()),
            DataError::Invalid(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
