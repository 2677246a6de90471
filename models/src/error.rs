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

/// The temporary file `write_atomic` writes `path` through: `NAME.EXT.tmp` beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader (or a kill
/// mid-write) never sees a half-written file. A failed write (a full disk, say) removes
/// its temporary file, so nothing half-written is left behind to take up the space.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] with the writing done by `write` (which tests use to inject a failure).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        write(&mut f).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("arbor-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let d = scratch("fail");
        let p = d.join("checkpoint.bin");
        std::fs::write(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |f| {
            use std::io::Write;
            f.write_all(b"half")?;
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        })
        .unwrap_err();
        assert!(err.to_string().contains("checkpoint.bin.tmp"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(!temp_path(&p).exists(), "temp file left behind");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_failed_rename_removes_the_temp_file() {
        let d = scratch("rename");
        // A non-empty directory where the file should go: the rename fails.
        let p = d.join("results.json");
        std::fs::create_dir_all(p.join("inside")).unwrap();
        assert!(write_atomic(&p, b"{}").is_err());
        assert!(!temp_path(&p).exists(), "temp file left behind");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn temp_path_appends_tmp_to_the_whole_name() {
        assert_eq!(
            temp_path(Path::new("/r/checkpoint.bin")),
            Path::new("/r/checkpoint.bin.tmp")
        );
        assert_eq!(temp_path(Path::new("/r/LOCK")), Path::new("/r/LOCK.tmp"));
    }
}
