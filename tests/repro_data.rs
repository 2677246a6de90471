//! Getting data as a user does: fetch a (small, test-built) CIFAR archive from a loopback
//! server and train on it; the reference's subset regardless of --seed; and the errors a
//! new user meets, each naming the flag or file and how to get the data.
mod common;
use common::{repro, stderr, tmp_dir as tmp};
#[path = "../models/tests/common/archive.rs"]
mod archive;
#[path = "../models/tests/common/http.rs"]
mod http;

use arbor_models::data::fetch::{fetch, ArchiveSpec};
use arbor_models::data::{load_cifar, longtail_subset, CifarKind, Split};
use archive::{md5_hex, small_cifar10};
use http::{Behaviour, Server};
use std::collections::HashMap;
use std::path::Path;

fn serving(bytes: &[u8]) -> Server {
    Server::start(Behaviour {
        files: HashMap::from([("/cifar-10-binary.tar.gz".to_string(), bytes.to_vec())]),
        ..Behaviour::default()
    })
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn fetched_archive_trains_for_an_epoch_on_the_references_subset() {
    // 100 records in each file: 500 training images, 50 per class.
    let bytes = small_cifar10(100);
    let server = serving(&bytes);
    let dir = tmp("fetch-train");
    let spec = ArchiveSpec {
        size: bytes.len() as u64,
        md5: md5_hex(&bytes),
        ..ArchiveSpec::cifar("cifar10").unwrap()
    };
    fetch(&spec, &server.url(), &dir, false).unwrap();

    let data = dir.to_str().unwrap();
    let out = dir.join("run");
    let o = repro(&[
        "train",
        "--dataset",
        "cifar10-lt",
        "--data",
        data,
        "--imb",
        "10",
        "--arch",
        "resnet8",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--seed",
        "5",
        "--quiet",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("results.json").is_file());
    let indices = json(&out.join("indices.json"));
    assert_eq!(indices["subset_seed"], 0);
    assert_eq!(indices["train_seed"], 5);

    // The subset is numpy's seed-0 draw (see models/tests/numpy_subset.rs), whatever --seed.
    let train = load_cifar(CifarKind::Cifar10, &dir, Split::Train).unwrap();
    let expected = longtail_subset(train.labels(), 10, 10.0, 0).unwrap();
    let chosen: Vec<usize> = serde_json::from_value(indices["indices"].clone()).unwrap();
    assert_eq!(chosen, expected.indices);

    // `repro data subset` writes the same subset without training.
    let file = dir.join("subset.json");
    let o = repro(&[
        "data",
        "subset",
        "--dataset",
        "cifar10-lt",
        "--data",
        data,
        "--imb",
        "10",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&file)["indices"], indices["indices"]);
    let o = repro(&[
        "data",
        "subset",
        "--dataset",
        "cifar10-lt",
        "--data",
        data,
        "--imb",
        "10",
        "--subset-seed",
        "1",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(json(&file)["indices"], indices["indices"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fetch_from_a_mirror_with_a_wrong_archive_fails_on_the_checksum() {
    let server = serving(&small_cifar10(3));
    let dir = tmp("fetch-wrong");
    let o = repro(&[
        "data",
        "fetch",
        "cifar10",
        "--quiet",
        "--dir",
        dir.to_str().unwrap(),
        "--mirror",
        &server.url(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("checksum mismatch") && e.contains("c32a1d4ab5d03f1284b67883e8d87530"),
        "{e}"
    );
    assert!(!dir.join("cifar-10-batches-bin").exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing may be left"
    );

    let o = repro(&["data", "fetch", "mnist", "--dir", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown dataset `mnist`"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_edges_name_the_flag_and_say_how_to_get_data() {
    let o = repro(&["train", "--dataset", "synthetic-lt", "--lr", "-1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--lr must be a positive number, got -1"),
        "{}",
        stderr(&o)
    );
    let o = repro(&["train", "--dataset", "synthetic-lt", "--wd", "-0.5"]);
    assert!(stderr(&o).contains("--wd must be >= 0"), "{}", stderr(&o));

    let o = repro(&[
        "train",
        "--dataset",
        "cifar100-lt",
        "--data",
        "/nonexistent/arbor",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("/nonexistent/arbor") && e.contains("repro data fetch cifar100"),
        "{e}"
    );
    let o = repro(&["train", "--dataset", "imagenet-lt"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--data DIR is required for imagenet-lt"),
        "{}",
        stderr(&o)
    );
}
