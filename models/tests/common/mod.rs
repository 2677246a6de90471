//! Helpers shared by the integration tests: a self-deleting temp folder and writers of
//! CIFAR binary files with known contents.
#![allow(dead_code)] // each test binary uses a different subset of the helpers

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("arbor-test-{tag}-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The label the writers give to global record `index` of a set with `classes` classes.
pub fn expected_label(index: usize, classes: usize) -> u32 {
    ((index * 7 + 3) % classes) as u32
}

/// The value the writers give to pixel byte `byte` of global record `index`.
pub fn expected_pixel(index: usize, byte: usize) -> u8 {
    ((index * 31 + byte * 7) % 251) as u8
}

/// Writes `records` records starting at global index `first` to `path`; `header` is 1
/// (CIFAR-10: label) or 2 (CIFAR-100: coarse, fine).
pub fn write_records(path: &Path, first: usize, records: usize, header: usize, classes: usize) {
    let mut bytes = Vec::with_capacity(records * (header + 3072));
    for index in first..first + records {
        let label = expected_label(index, classes) as u8;
        if header == 2 {
            bytes.push(label / 5); // coarse label, 20 superclasses of 5 fine classes
        }
        bytes.push(label);
        bytes.extend((0..3072).map(|b| expected_pixel(index, b)));
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes a full-size CIFAR-10 binary folder `dir/cifar-10-batches-bin`; `train` adds
/// the five training batches (global indices 0..50 000), the test batch always (its own
/// indices 0..10 000).
pub fn write_cifar10(dir: &Path, train: bool) -> PathBuf {
    let folder = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    if train {
        for batch in 0..5 {
            let name = format!("data_batch_{}.bin", batch + 1);
            write_records(&folder.join(name), batch * 10_000, 10_000, 1, 10);
        }
    }
    write_records(&folder.join("test_batch.bin"), 0, 10_000, 1, 10);
    folder
}

/// Writes a full-size CIFAR-100 binary folder `dir/cifar-100-binary`.
pub fn write_cifar100(dir: &Path, train: bool) -> PathBuf {
    let folder = dir.join("cifar-100-binary");
    std::fs::create_dir_all(&folder).unwrap();
    if train {
        write_records(&folder.join("train.bin"), 0, 50_000, 2, 100);
    }
    write_records(&folder.join("test.bin"), 0, 10_000, 2, 100);
    folder
}

/// Overwrites one byte of a file.
pub fn poke(path: &Path, offset: usize, value: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] = value;
    std::fs::write(path, bytes).unwrap();
}
