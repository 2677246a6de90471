//! The models crate's error: what went wrong and where (file, flag, epoch), so `repro`
//! can print it and exit non-zero without a backtrace.
use crate::data::DataError;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// A flag or configuration value that makes no sense.
    Config(String),
    Engine(arbor_engine::Error),
    Data(DataError),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A checkpoint or results file that cannot be used.
    File {
        path: PathBuf,
        detail: String,
    },
    /// Training produced a non-finite loss.
    Diverged(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn file(path: &Path, detail: impl Into<String>) -> Self {
        Error::File {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "{m}"),
            Error::Engine(e) => write!(f, "engine: {e}"),
            Error::Data(e) => write!(f, "data: {e}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::File { path, detail } => write!(f, "{}: {detail}", path.display()),
            Error::Diverged(m) => write!(f, "training diverged: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<arbor_engine::Error> for Error {
    fn from(e: arbor_engine::Error) -> Self {
        Error::Engine(e)
    }
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        Error::Data(e)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader (or a kill
/// mid-write) never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
