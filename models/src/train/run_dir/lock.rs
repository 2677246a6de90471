//! One process per run folder: an OS lock on `repro.lock`, held for the whole run and
//! released when the process exits, however it exits; the file names its holder for the
//! message a second `repro` prints.
use super::LOCK_FILE;
use crate::error::{Error, Result};
use std::fs::File;
use std::path::Path;

/// The held lock of a folder; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Fails at once when another process holds `out`'s lock (before any data is loaded);
/// creates nothing.
pub fn check_not_in_use(out: &Path) -> Result<()> {
    let path = out.join(LOCK_FILE);
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(&path) else {
        return Ok(());
    };
    match file.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => lock(out).map(drop),
        _ => Ok(()),
    }
}

/// Takes `dir`'s lock (creating `dir` if needed), or says who holds it.
pub fn lock(dir: &Path) -> Result<RunLock> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::Config(format!(
                "{} is in use by another repro ({}); wait for it to finish or choose another --out",
                dir.display(),
                if holder.is_empty() {
                    "holder unknown"
                } else {
                    holder
                }
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    // Who holds it, for the message a second process prints.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let args: Vec<String> = std::env::args().collect();
    let note = format!(
        "pid {}, started at unix time {started}: {}\n",
        std::process::id(),
        args.join(" ")
    );
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(note.as_bytes()))
        .map_err(|e| Error::io(&path, e))?;
    Ok(RunLock { _file: file })
}
