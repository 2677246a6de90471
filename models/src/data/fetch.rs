//! `repro data fetch`: download a dataset archive, verify it, unpack it, all or nothing.
//!
//! The steps, and why each is there:
//! 1. Download into `DIR/<archive>.part`. A rerun after a broken connection asks for the
//!    rest with an HTTP Range request (a 170 MB file on a slow link should not restart);
//!    a server that ignores the Range gets a fresh download.
//! 2. Check the size and the MD5 the dataset authors publish *before* anything is
//!    unpacked; a mismatch names both sums and deletes the download.
//! 3. Unpack only the expected regular files (`extract`) into a temporary folder, then
//!    rename it into place, so `DIR/<folder>` is either complete or absent.
//! 4. Leave a marker (`.arbor-fetched.json`: the archive's MD5 and each file's size) so
//!    that a rerun can say "already present and verified" without the archive.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::DataError;

mod extract;

/// Where the CIFAR authors publish the archives.
pub const AUTHORS_URL: &str = "https://www.cs.toronto.edu/~kriz";

/// Name of the marker file inside an unpacked folder.
pub const MARKER: &str = ".arbor-fetched.json";

/// One downloadable archive: what to fetch, how to check it, what it must contain.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveSpec {
    /// File name on the server, also the local download's name.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// MD5 as 32 lowercase hex digits.
    pub md5: String,
    /// The one top-level folder every member lies in.
    pub folder: String,
    /// Files the folder must hold.
    pub required: Vec<String>,
    /// Files it may also hold (documentation, label names).
    pub optional: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl ArchiveSpec {
    /// The binary distribution of `cifar10` or `cifar100`, as published by its authors.
    pub fn cifar(name: &str) -> Result<Self, DataError> {
        match name {
            "cifar10" => Ok(ArchiveSpec {
                file: "cifar-10-binary.tar.gz".into(),
                size: 170_052_171,
                md5: "c32a1d4ab5d03f1284b67883e8d87530".into(),
                folder: "cifar-10-batches-bin".into(),
                required: names(&[
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                    "test_batch.bin",
                ]),
                optional: names(&["batches.meta.txt", "readme.html"]),
            }),
            "cifar100" => Ok(ArchiveSpec {
                file: "cifar-100-binary.tar.gz".into(),
                size: 168_513_733,
                md5: "03b5dce01913d631647c71ecec9e9cb8".into(),
                folder: "cifar-100-binary".into(),
                required: names(&["train.bin", "test.bin"]),
                optional: names(&["coarse_label_names.txt", "fine_label_names.txt"]),
            }),
            other => Err(DataError::invalid(format!(
                "repro data fetch: unknown dataset `{other}` (expected cifar10 or cifar100; \
                 the large-scale sets must be downloaded by hand, see the README)"
            ))),
        }
    }
}

/// What [`fetch`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The folder was already there with a matching marker; nothing was downloaded.
    AlreadyPresent(PathBuf),
    /// Downloaded (or resumed), verified and unpacked into this folder.
    Unpacked(PathBuf),
}

/// The record [`MARKER`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    md5: String,
    files: Vec<(String, u64)>,
}

/// Fetches `spec` from `base_url` (`AUTHORS_URL` or a mirror) into `dir/spec.folder`.
pub fn fetch(
    spec: &ArchiveSpec,
    base_url: &str,
    dir: &Path,
    progress: bool,
) -> Result<Fetched, DataError> {
    let target = dir.join(&spec.folder);
    if target.exists() {
        return match verified(spec, &target) {
            Ok(()) => Ok(Fetched::AlreadyPresent(target)),
            Err(why) => Err(DataError::invalid(format!(
                "{} exists but is not a verified download ({why}); remove it and fetch again",
                target.display()
            ))),
        };
    }
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let part = dir.join(format!("{}.part", spec.file));
    let url = format!("{}/{}", base_url.trim_end_matches('/'), spec.file);
    let result = download(&url, &part, spec.size, progress)
        .and_then(|()| check_download(spec, &part))
        .and_then(|()| extract::unpack(spec, &part, dir));
    if result.is_err() && created {
        // A folder this call made and left empty (no resumable .part in it) goes too;
        // remove_dir refuses a non-empty folder.
        let _ = std::fs::remove_dir(dir);
    }
    result?;
    // The folder is in place and complete: the download is no longer needed.
    remove(&part)?;
    Ok(Fetched::Unpacked(target))
}

/// Checks the marker of an unpacked folder against `spec` and the files on disk.
fn verified(spec: &ArchiveSpec, folder: &Path) -> Result<(), String> {
    let path = folder.join(MARKER);
    let text = std::fs::read_to_string(&path).map_err(|_| format!("no {MARKER}"))?;
    let marker: Marker =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if marker.md5 != spec.md5 {
        return Err(format!(
            "it came from an archive with MD5 {}, not {}",
            marker.md5, spec.md5
        ));
    }
    for name in &spec.required {
        let size = std::fs::metadata(folder.join(name))
            .map_err(|_| format!("{name} is missing"))?
            .len();
        let recorded = marker.files.iter().find(|(n, _)| n == name).map(|f| f.1);
        if recorded != Some(size) {
            return Err(format!("{name} has changed size since it was unpacked"));
        }
    }
    Ok(())
}

/// Writes the marker of a freshly unpacked folder (`files`: name and size of each).
fn write_marker(
    spec: &ArchiveSpec,
    folder: &Path,
    files: Vec<(String, u64)>,
) -> Result<(), DataError> {
    let marker = Marker {
        md5: spec.md5.clone(),
        files,
    };
    let path = folder.join(MARKER);
    let json = serde_json::to_vec_pretty(&marker).expect("marker serialises");
    std::fs::write(&path, json).map_err(|e| DataError::io(&path, e))
}

fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build()
}

/// Downloads `url` into `part`, resuming what is already there when the server allows.
///
/// A broken connection keeps `part` for the next run; a write error (a full disk)
/// deletes it, since a rerun could not complete it either.
fn download(url: &str, part: &Path, expected: u64, progress: bool) -> Result<(), DataError> {
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if have > expected {
        remove(part)?;
        have = 0;
    }
    if have == expected {
        return Ok(()); // complete from an earlier run; the checksum decides
    }
    let agent = http_agent();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(r) => r,
        // The part is longer than what the server has: start again.
        Err(ureq::Error::Status(416, _)) if have > 0 => {
            remove(part)?;
            return download(url, part, expected, progress);
        }
        Err(ureq::Error::Status(code, r)) => {
            return Err(DataError::invalid(format!(
                "downloading {url}: the server answered HTTP {code} {}",
                r.status_text()
            )))
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(DataError::invalid(format!(
                "downloading {url}: cannot reach the server ({t}); check the network or pass \
                 --mirror URL"
            )))
        }
    };
    let resumed = have > 0 && response.status() == 206;
    if !resumed {
        have = 0;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .map_err(|e| DataError::io(part, e))?;
    let bar = progress_bar(progress, expected, have);
    let mut reader = response.into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                let _ = file.sync_all();
                return Err(DataError::invalid(format!(
                    "downloading {url}: the connection broke after {have} bytes ({e}); \
                     run the command again to resume"
                )));
            }
        };
        if let Err(e) = file.write_all(&buffer[..n]) {
            bar.abandon();
            drop(file);
            let _ = std::fs::remove_file(part);
            return Err(DataError::io(part, e));
        }
        have += n as u64;
        bar.set_position(have);
    }
    if let Err(e) = file.sync_all() {
        drop(file);
        let _ = std::fs::remove_file(part);
        return Err(DataError::io(part, e));
    }
    bar.finish_and_clear();
    Ok(())
}

fn remove(path: &Path) -> Result<(), DataError> {
    std::fs::remove_file(path).map_err(|e| DataError::io(path, e))
}

fn progress_bar(show: bool, total: u64, position: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bytes:>10}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    bar.set_position(position);
    bar
}

/// Checks the download's size and MD5; a bad download is deleted.
fn check_download(spec: &ArchiveSpec, part: &Path) -> Result<(), DataError> {
    let size = std::fs::metadata(part)
        .map_err(|e| DataError::io(part, e))?
        .len();
    let actual = md5_file(part)?;
    if size != spec.size || actual != spec.md5 {
        remove(part)?;
        return Err(DataError::format(
            part,
            format!(
                "checksum mismatch: MD5 {actual} ({size} bytes), expected {} ({} bytes); \
                 the download was deleted, run the command again",
                spec.md5, spec.size
            ),
        ));
    }
    Ok(())
}

/// The MD5 of a file as 32 lowercase hex digits.
pub fn md5_file(path: &Path) -> Result<String, DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(path, e))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
