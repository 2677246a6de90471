//! Unpacking a verified `.tar.gz` without trusting it: every member must be the archive's
//! one folder or a regular file of the expected names directly inside it. Anything else
//! (`../` or absolute paths, links, devices, unknown names) is an error, because a
//! checksum only proves the archive is the one we expected, not that our expectation
//! about its layout is right, and a mirror may serve anything.

use std::path::{Path, PathBuf};

use super::{write_marker, ArchiveSpec};
use crate::data::DataError;

/// Unpacks `archive` into `dir/spec.folder` through a temporary folder and a rename.
pub(super) fn unpack(spec: &ArchiveSpec, archive: &Path, dir: &Path) -> Result<PathBuf, DataError> {
    let target = dir.join(&spec.folder);
    let tmp = dir.join(format!(".{}.unpacking-{}", spec.folder, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    let result = unpack_into(spec, archive, &tmp).and_then(|files| {
        write_marker(spec, &tmp, files)?;
        std::fs::rename(&tmp, &target).map_err(|e| DataError::io(&target, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| target)
}

/// Writes the archive's files into `tmp`; returns each file's name and size.
fn unpack_into(
    spec: &ArchiveSpec,
    archive: &Path,
    tmp: &Path,
) -> Result<Vec<(String, u64)>, DataError> {
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let corrupt = |e: std::io::Error| {
        DataError::format(archive, format!("corrupt or truncated archive: {e}"))
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files: Vec<(String, u64)> = Vec::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = member_name(spec, &raw)
            .map_err(|why| DataError::format(archive, format!("archive member `{raw}`: {why}")))?;
        let kind = entry.header().entry_type();
        let Some(name) = name else {
            if kind.is_dir() {
                continue; // the folder itself
            }
            return Err(DataError::format(
                archive,
                format!("archive member `{raw}` is not a directory"),
            ));
        };
        if !kind.is_file() {
            return Err(DataError::format(
                archive,
                format!("archive member `{raw}` is not a regular file ({kind:?}); links and devices are refused"),
            ));
        }
        if files.iter().any(|(n, _)| *n == name) {
            return Err(DataError::format(
                archive,
                format!("archive member `{raw}` appears twice"),
            ));
        }
        let out = tmp.join(&name);
        let mut writer = std::fs::File::create(&out).map_err(|e| DataError::io(&out, e))?;
        let size = match std::io::copy(&mut entry, &mut writer) {
            Ok(size) => size,
            // A read error is the archive's fault; a write error (full disk) the folder's.
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                return Err(DataError::io(&out, e))
            }
            Err(e) => return Err(corrupt(e)),
        };
        writer.sync_all().map_err(|e| DataError::io(&out, e))?;
        files.push((name, size));
    }
    if let Some(missing) = spec
        .required
        .iter()
        .find(|r| !files.iter().any(|(n, _)| n == *r))
    {
        return Err(DataError::format(
            archive,
            format!("archive lacks {}/{missing}", spec.folder),
        ));
    }
    Ok(files)
}

/// `Ok(None)` for the folder entry, `Ok(Some(file name))` for an expected file inside it.
fn member_name(spec: &ArchiveSpec, raw: &str) -> Result<Option<String>, String> {
    if raw.starts_with('/') || raw.contains('\\') {
        return Err("absolute or Windows paths are refused".into());
    }
    let relative = raw.strip_prefix("./").unwrap_or(raw);
    let mut parts = relative.split('/').filter(|p| !p.is_empty());
    let folder = parts.next().unwrap_or("");
    let file = parts.next();
    if parts.next().is_some() || folder != spec.folder || relative.contains("..") {
        return Err(format!(
            "expected `{}` or a file directly inside it",
            spec.folder
        ));
    }
    match file {
        None => Ok(None),
        Some(f) if spec.required.iter().chain(&spec.optional).any(|n| n == f) => {
            Ok(Some(f.to_string()))
        }
        Some(f) => Err(format!("`{f}` is not a file this archive should hold")),
    }
}
