//! Append-only JSON-lines files of a run (`log.jsonl`, and any per-epoch record beside it),
//! kept in step with the checkpoint: on resume each is cut back to the checkpoint's epoch,
//! so a kill between an append and the checkpoint save never duplicates or loses a line.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Appends one serialised line to `path` and flushes it to disk.
pub fn append<T: serde::Serialize>(path: &Path, record: &T) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let line = serde_json::to_string(record).expect("record serialises");
    writeln!(f, "{line}").map_err(|e| Error::io(path, e))?;
    f.sync_data().map_err(|e| Error::io(path, e))
}

/// Keeps the lines of `path` whose `"epoch"` is at most `last_epoch`, in order, and drops
/// the rest (later epochs, and a torn last line from a kill mid-write). A missing file is
/// left missing. The file is rewritten through a temporary file and a rename.
pub fn truncate_to_epoch(path: &Path, last_epoch: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v.get("epoch").and_then(|e| e.as_u64()) {
            Some(e) if (e as usize) <= last_epoch => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => {}
        }
    }
    if kept == text {
        return Ok(());
    }
    crate::error::write_atomic(path, kept.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_epochs_up_to_the_checkpoint_and_drops_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("arbor-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log.jsonl");
        std::fs::write(&p, "{\"epoch\":1}\n{\"epoch\":2}\n{\"epoch\":3}\n{\"epo").unwrap();
        truncate_to_epoch(&p, 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"epoch\":1}\n{\"epoch\":2}\n"
        );
        truncate_to_epoch(&p, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        truncate_to_epoch(&dir.join("missing.jsonl"), 3).unwrap();
        assert!(!dir.join("missing.jsonl").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
