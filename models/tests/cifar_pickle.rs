//! CIFAR's Python distribution: the same images, order and errors as the binary one.
//!
//! The pickles are written here opcode by opcode as Python 2's cPickle wrote CIFAR's
//! (protocol 2, `str` keys and pixel data as BINSTRING, the numpy array as
//! `_reconstruct` + `BUILD`). That the writer is faithful was checked once with numpy
//! 2.4.6: `d = pickle.load(open(f, 'rb'), encoding='latin1')` gives `d['data']` a uint8
//! array of shape (N, 3072) equal to the binary file's pixels and `d['labels']` its labels.

mod common;

use arbor_models::data::cifar_pickle::{load_cifar_any, python_folder};
use arbor_models::data::{load_cifar, CifarKind, Split};
use common::{expected_label, expected_pixel, TempDir};
use std::path::Path;

fn binstring(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 256 {
        out.push(b'U');
        out.push(s.len() as u8);
    } else {
        out.push(b'T');
        out.extend((s.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

fn int(out: &mut Vec<u8>, v: i32) {
    out.push(b'J');
    out.extend(v.to_le_bytes());
}

/// A CIFAR-style pickle of records `first..first + n` (labels under `label_key`;
/// CIFAR-100 files also carry `coarse_labels`).
fn pickle(first: usize, n: usize, classes: usize, label_key: &str) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'(']; // PROTO 2, EMPTY_DICT, MARK
    binstring(&mut p, b"data");
    p.extend(b"cnumpy.core.multiarray\n_reconstruct\n");
    p.extend(b"cnumpy\nndarray\n");
    int(&mut p, 0);
    p.push(0x85); // TUPLE1
    binstring(&mut p, b"b");
    p.extend([0x87, b'R', b'(']); // TUPLE3, REDUCE, MARK
    int(&mut p, 1);
    int(&mut p, n as i32);
    int(&mut p, 3072);
    p.push(0x86); // TUPLE2
    p.extend(b"cnumpy\ndtype\n");
    binstring(&mut p, b"u1");
    p.extend([0x89, 0x88, 0x87, b'R', b'(']); // False, True, TUPLE3, REDUCE, MARK
    int(&mut p, 3);
    binstring(&mut p, b"|");
    p.extend(b"NNN");
    int(&mut p, -1);
    int(&mut p, -1);
    int(&mut p, 0);
    p.extend([b't', b'b', 0x89]); // TUPLE, BUILD, False
    let pixels: Vec<u8> = (first..first + n)
        .flat_map(|i| (0..3072).map(move |b| expected_pixel(i, b)))
        .collect();
    binstring(&mut p, &pixels);
    p.extend([b't', b'b']);
    for key in [label_key, "coarse_labels"] {
        if key == "coarse_labels" && classes != 100 {
            continue;
        }
        binstring(&mut p, key.as_bytes());
        p.extend([b']', b'(']); // EMPTY_LIST, MARK
        for i in first..first + n {
            let l = expected_label(i, classes);
            int(
                &mut p,
                if key == "coarse_labels" {
                    (l / 5) as i32
                } else {
                    l as i32
                },
            );
        }
        p.push(b'e'); // APPENDS
    }
    p.extend([b'u', b'.']); // SETITEMS, STOP
    p
}

fn write_python_cifar10(dir: &Path, per_file: usize) {
    let folder = dir.join(python_folder(CifarKind::Cifar10));
    std::fs::create_dir_all(&folder).unwrap();
    for k in 0..5 {
        let bytes = pickle(k * per_file, per_file, 10, "labels");
        std::fs::write(folder.join(format!("data_batch_{}", k + 1)), bytes).unwrap();
    }
    std::fs::write(folder.join("test_batch"), pickle(0, per_file, 10, "labels")).unwrap();
}

/// The binary files of the same records, for comparison.
fn write_binary_cifar10(dir: &Path, per_file: usize) {
    let folder = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    for k in 0..5 {
        let name = format!("data_batch_{}.bin", k + 1);
        common::write_records(&folder.join(name), k * per_file, per_file, 1, 10);
    }
    common::write_records(&folder.join("test_batch.bin"), 0, per_file, 1, 10);
}

#[test]
fn python_cifar10_equals_the_binary_distribution() {
    let py = TempDir::new("py10");
    let bin = TempDir::new("bin10");
    write_python_cifar10(py.path(), 40);
    write_binary_cifar10(bin.path(), 40);
    for split in [Split::Train, Split::Test] {
        let from_py = load_cifar_any(CifarKind::Cifar10, py.path(), split).unwrap();
        let from_bin = load_cifar(CifarKind::Cifar10, bin.path(), split).unwrap();
        assert_eq!(from_py, from_bin);
    }
    // The folder itself may be given too.
    let folder = py.path().join("cifar-10-batches-py");
    assert_eq!(
        load_cifar_any(CifarKind::Cifar10, &folder, Split::Test)
            .unwrap()
            .len(),
        40
    );
}

#[test]
fn python_cifar100_takes_the_fine_label() {
    let py = TempDir::new("py100");
    let folder = py.path().join("cifar-100-python");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("train"), pickle(0, 300, 100, "fine_labels")).unwrap();
    std::fs::write(folder.join("test"), pickle(0, 100, 100, "fine_labels")).unwrap();
    let train = load_cifar_any(CifarKind::Cifar100, py.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 300);
    assert_eq!(train.labels()[7], expected_label(7, 100));
    assert_eq!(train.image(9)[1500], expected_pixel(9, 1500));
}

#[test]
fn bad_pickles_name_the_file() {
    let py = TempDir::new("pybad");
    write_python_cifar10(py.path(), 4);
    let folder = py.path().join("cifar-10-batches-py");
    let path = folder.join("data_batch_3");
    let good = std::fs::read(&path).unwrap();

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let e = load_cifar_any(CifarKind::Cifar10, py.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_3") && e.contains("not a readable pickle"),
        "{e}"
    );

    std::fs::write(&path, pickle(0, 4, 10, "targets")).unwrap();
    let e = load_cifar_any(CifarKind::Cifar10, py.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_3") && e.contains("no `labels`"),
        "{e}"
    );

    // A label beyond the classes: CIFAR-100 labels read as CIFAR-10.
    std::fs::write(&path, pickle(0, 4, 100, "labels")).unwrap();
    let e = load_cifar_any(CifarKind::Cifar10, py.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_3") && e.contains("is not < 10"),
        "{e}"
    );

    // A pickle that would run code if unpickled by Python is only data here.
    std::fs::write(&path, b"\x80\x02cos\nsystem\nU\x05touch\x85R.").unwrap();
    let e = load_cifar_any(CifarKind::Cifar10, py.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(e.contains("data_batch_3"), "{e}");

    std::fs::remove_file(&path).unwrap();
    let e = load_cifar_any(CifarKind::Cifar10, py.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(e.contains("data_batch_3"), "{e}");
}
