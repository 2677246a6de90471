//! What every end-to-end test of `repro` needs: run the binary as a user would, a fresh
//! scratch folder, and the error text.
#![allow(dead_code)] // each test file uses its own share of these

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `repro ARGS` on two threads (the CI machine's size) and waits for it.
pub fn repro(args: &[&str]) -> Output {
    repro_env(args, &[])
}

/// [`repro`] with extra environment variables (`ARBOR_SIMD`, ...).
pub fn repro_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repro"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .envs(env.iter().copied())
        .output()
        .expect("repro runs")
}

/// A scratch path unique to this test process, removed first if a crashed run left it.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arbor-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// [`tmp`], created.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = tmp(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}
