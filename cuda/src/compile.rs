//! Run-time compilation of the kernel files with NVRTC, with two caches.
//!
//! A kernel file is compiled the first time one of its kernels is needed, for the GPU's
//! own architecture (`compute_90` on an H100/H200), so no CUDA toolkit is needed at build
//! time. The PTX is kept in memory for the process and on disk under `ARBOR_CUDA_CACHE`
//! (default `$HOME/.cache/arbor/ptx`), keyed by a hash of the spliced source, the NVRTC
//! options (architecture included) and the NVRTC version, so a changed kernel or a
//! different NVRTC never reuses stale PTX.
//!
//! `cuda_fp16.h` / `cuda_bf16.h` come from `ARBOR_CUDA_INCLUDE`, else from a
//! `.venv-cuda` made by `scripts/install-nvrtc.sh` (PyPI layout
//! `site-packages/nvidia/cu13/include`), else from `$CUDA_HOME/include` or
//! `/usr/local/cuda/include`.

use crate::error::{Error, Result};
use crate::kernels::{KernelFile, ALL, HEADERS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Source of `file` with every `#include "<our header>"` replaced by the header's text.
/// `#line` directives keep NVRTC's error positions pointing at the original files.
pub fn spliced_source(file: &KernelFile) -> String {
    let mut out = String::with_capacity(file.source.len() + 16 * 1024);
    for (line_no, line) in file.source.lines().enumerate() {
        let included = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|name| HEADERS.iter().find(|(header, _)| *header == name));
        match included {
            Some((name, text)) => {
                out.push_str(&format!("#line 1 \"{name}\"\n{text}\n"));
                out.push_str(&format!("#line {} \"{}\"\n", line_no + 2, file.name));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// 64-bit FNV-1a over several byte strings, each followed by a 0 separator. Stable
/// across runs and platforms (unlike `std`'s hasher), which a disk cache key needs.
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.iter().chain(std::iter::once(&0u8)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Fails with a clear message when libnvrtc cannot be loaded. cudarc panics on a missing
/// library, so this check must come before any NVRTC call.
pub fn nvrtc_available() -> Result<()> {
    // SAFETY: only tries to dlopen the library by its usual names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::NvrtcMissing(
            "libnvrtc.so.13 was not found on the library path. Run scripts/install-nvrtc.sh \
             and export the LD_LIBRARY_PATH it prints, or install the CUDA 13 toolkit."
                .into(),
        ))
    }
}

/// NVRTC's (major, minor) version; part of the cache key.
fn nvrtc_version() -> Result<(i32, i32)> {
    nvrtc_available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); the pointers are valid locals.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if status != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(Error::NvrtcMissing(format!(
            "nvrtcVersion failed: {status:?}"
        )));
    }
    Ok((major, minor))
}

/// The directory holding `cuda_fp16.h`, searched as described in the module docs.
pub fn cuda_include_dir() -> Option<PathBuf> {
    let has_headers = |dir: &Path| dir.join("cuda_fp16.h").is_file();
    if let Some(dir) = std::env::var_os("ARBOR_CUDA_INCLUDE").map(PathBuf::from) {
        return has_headers(&dir).then_some(dir);
    }
    let mut venvs: Vec<PathBuf> = std::env::var_os("VIRTUAL_ENV")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(cwd) = std::env::current_dir() {
        venvs.extend(cwd.ancestors().map(|dir| dir.join(".venv-cuda")));
    }
    for venv in venvs {
        let Ok(entries) = std::fs::read_dir(venv.join("lib")) else {
            continue;
        };
        for python in entries.flatten() {
            let dir = python.path().join("site-packages/nvidia/cu13/include");
            if has_headers(&dir) {
                return Some(dir);
            }
        }
    }
    let toolkits = ["CUDA_HOME", "CUDA_PATH"]
        .into_iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from);
    toolkits
        .chain(std::iter::once(PathBuf::from("/usr/local/cuda")))
        .map(|root| root.join("include"))
        .find(|dir| has_headers(dir))
}

/// Where compiled PTX is cached on disk, if anywhere.
fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("ARBOR_CUDA_CACHE") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/arbor/ptx")),
    }
}

/// NVRTC options for `arch` (e.g. `"compute_90"`).
fn compile_options(arch: &str, include_dir: Option<&Path>) -> Vec<String> {
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
    ];
    if let Some(dir) = include_dir {
        options.push(format!("--include-path={}", dir.display()));
    }
    options
}

fn memory_cache() -> &'static Mutex<HashMap<u64, Arc<str>>> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Arc<str>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// PTX for `file` on architecture `arch`, from the memory cache, the disk cache, or NVRTC.
pub fn ptx_for(file: &KernelFile, arch: &str) -> Result<Arc<str>> {
    let source = spliced_source(file);
    let include_dir = cuda_include_dir();
    let options = compile_options(arch, include_dir.as_deref());
    let (major, minor) = nvrtc_version()?;
    let version = format!("nvrtc {major}.{minor}");
    let mut key_parts: Vec<&[u8]> = vec![source.as_bytes(), version.as_bytes()];
    key_parts.extend(options.iter().map(|option| option.as_bytes()));
    let key = fnv1a64(&key_parts);

    if let Some(ptx) = lock(memory_cache()).get(&key) {
        return Ok(ptx.clone());
    }
    let stem = file.name.trim_end_matches(".cu");
    let disk_path = cache_dir().map(|dir| dir.join(format!("{stem}-{key:016x}.ptx")));
    let cached = disk_path
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok());
    let ptx: Arc<str> = match cached {
        Some(ptx) => ptx.into(),
        None => {
            let ptx = nvrtc_compile(file, &source, options, include_dir.is_none())?;
            if let Some(path) = &disk_path {
                write_cache(path, &ptx);
            }
            ptx.into()
        }
    };
    lock(memory_cache()).insert(key, ptx.clone());
    Ok(ptx)
}

/// Compiles every kernel file for `arch` and returns `(file name, PTX)` pairs. Needs
/// NVRTC but no GPU, so CI can check the kernels on any machine.
pub fn compile_all_to_ptx(arch: &str) -> Result<Vec<(String, String)>> {
    ALL.iter()
        .map(|file| Ok((file.name.to_string(), ptx_for(file, arch)?.to_string())))
        .collect()
}

fn nvrtc_compile(
    file: &KernelFile,
    source: &str,
    options: Vec<String>,
    no_include_dir: bool,
) -> Result<String> {
    use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};
    nvrtc_available()?;
    let opts = CompileOptions {
        options,
        name: Some(file.name.to_string()),
        ..Default::default()
    };
    let compile_error = |log: String| {
        let hint = if no_include_dir {
            "\n(no CUDA include directory was found for cuda_fp16.h: set ARBOR_CUDA_INCLUDE, \
             see scripts/install-nvrtc.sh)"
        } else {
            ""
        };
        Error::Compile {
            file: file.name.to_string(),
            log: format!("{log}{hint}"),
        }
    };
    match compile_ptx_with_opts(source, opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(CompileError::CompileError { log, .. }) => {
            Err(compile_error(log.to_string_lossy().into_owned()))
        }
        Err(other) => Err(compile_error(format!("{other:?}"))),
    }
}

/// Best effort: the disk cache only saves time, so failing to write it is not an error.
/// Writing to a temporary name and renaming keeps a concurrent reader from seeing half a
/// file.
fn write_cache(path: &Path, ptx: &str) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, ptx).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Locks a cache mutex; a panic elsewhere while holding it cannot leave a map half-updated
/// in a way that matters here, so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
        assert_eq!(fnv1a64(&[b"abc"]), fnv1a64(&[b"abc"]));
    }

    #[test]
    fn headers_are_spliced_with_line_markers() {
        let source = spliced_source(&crate::kernels::ELEMENTWISE);
        assert!(!source
            .lines()
            .any(|line| line.trim() == "#include \"common.cuh\""));
        assert!(source.contains("#line 1 \"common.cuh\""));
        assert!(source.contains("#line 13 \"elementwise.cu\""));
        assert!(source.contains("__device__ __forceinline__ float exp_of(float x)"));
    }

    #[test]
    fn cache_files_are_written_whole() {
        let dir = std::env::temp_dir().join(format!("arbor-cache-test-{}", std::process::id()));
        let path = dir.join("nested/unary-0123.ptx");
        write_cache(&path, "// ptx");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "// ptx");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "the temporary file was renamed away");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_kernel_file_includes_only_known_headers() {
        for file in ALL {
            let source = spliced_source(file);
            let unresolved: Vec<&str> = source
                .lines()
                .filter(|line| line.trim_start().starts_with("#include \""))
                .collect();
            assert!(
                unresolved.is_empty(),
                "{}: unresolved {unresolved:?}",
                file.name
            );
        }
    }
}
