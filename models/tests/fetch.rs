//! `data::fetch` against a loopback server: download, resume, verify, unpack, and every
//! way it must refuse, each leaving no unpacked folder behind.

#[path = "common/archive.rs"]
mod archive;
mod common;
#[path = "common/http.rs"]
mod http;

use arbor_models::data::fetch::{fetch, md5_file, ArchiveSpec, Fetched, MARKER};
use arbor_models::data::{load_cifar, CifarKind, Split};
use archive::{md5_hex, small_cifar10, tar_gz, Member};
use common::TempDir;
use http::{Behaviour, Server};
use std::collections::HashMap;

const FILE: &str = "cifar-10-binary.tar.gz";

/// The CIFAR-10 layout with `bytes`' own size and checksum.
fn spec_for(bytes: &[u8]) -> ArchiveSpec {
    ArchiveSpec {
        size: bytes.len() as u64,
        md5: md5_hex(bytes),
        ..ArchiveSpec::cifar("cifar10").unwrap()
    }
}

fn serving(bytes: &[u8]) -> Server {
    Server::start(Behaviour {
        files: HashMap::from([(format!("/{FILE}"), bytes.to_vec())]),
        ..Behaviour::default()
    })
}

/// Nothing but (possibly) a `.part` download in `dir`: no folder, no temp folder.
fn assert_nothing_unpacked(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(name.ends_with(".part"), "left behind: {name}");
    }
}

#[test]
fn downloads_verifies_unpacks_then_reports_present() {
    let bytes = small_cifar10(20);
    let server = serving(&bytes);
    let dir = TempDir::new("fetch-ok");
    let got = fetch(&spec_for(&bytes), &server.url(), dir.path(), false).unwrap();
    let folder = dir.path().join("cifar-10-batches-bin");
    assert_eq!(got, Fetched::Unpacked(folder.clone()));
    assert!(folder.join(MARKER).is_file());
    assert!(!dir.path().join(format!("{FILE}.part")).exists());
    let train = load_cifar(CifarKind::Cifar10, dir.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 100);
    assert_eq!(train.labels()[..4], [3, 0, 7, 4]);
    // A second fetch downloads nothing.
    let before = server.requests.load(std::sync::atomic::Ordering::Relaxed);
    let again = fetch(&spec_for(&bytes), &server.url(), dir.path(), false).unwrap();
    assert_eq!(again, Fetched::AlreadyPresent(folder.clone()));
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    // A file changed since: no longer verified.
    std::fs::write(folder.join("test_batch.bin"), b"x").unwrap();
    let error = fetch(&spec_for(&bytes), &server.url(), dir.path(), false).unwrap_err();
    assert!(
        error.to_string().contains("test_batch.bin has changed"),
        "{error}"
    );
}

#[test]
fn a_broken_download_resumes_with_a_range_request() {
    let bytes = small_cifar10(20);
    let server = serving(&bytes);
    server.behaviour.lock().unwrap().break_next = 1;
    let dir = TempDir::new("fetch-resume");
    let error = fetch(&spec_for(&bytes), &server.url(), dir.path(), false).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("run the command again to resume"),
        "{error}"
    );
    let part = dir.path().join(format!("{FILE}.part"));
    let half = std::fs::metadata(&part).unwrap().len();
    assert_eq!(half, bytes.len() as u64 / 2);
    assert_nothing_unpacked(dir.path());

    fetch(&spec_for(&bytes), &server.url(), dir.path(), false).unwrap();
    assert_eq!(*server.ranges.lock().unwrap(), [None, Some(half)]);
    assert!(dir
        .path()
        .join("cifar-10-batches-bin/data_batch_5.bin")
        .is_file());
}

#[test]
fn a_server_that_ignores_the_range_gets_a_fresh_download() {
    let bytes = small_cifar10(20);
    let server = serving(&bytes);
    server.behaviour.lock().unwrap().ignore_range = true;
    let dir = TempDir::new("fetch-restart");
    std::fs::write(dir.path().join(format!("{FILE}.part")), &bytes[..100]).unwrap();
    fetch(&spec_for(&bytes), &server.url(), dir.path(), false).unwrap();
    assert_eq!(*server.ranges.lock().unwrap(), [Some(100)]);
    assert!(dir
        .path()
        .join("cifar-10-batches-bin/test_batch.bin")
        .is_file());
}

#[test]
fn checksum_mismatch_names_both_sums_and_deletes_the_download() {
    let good = small_cifar10(20);
    let wrong = small_cifar10(21);
    let server = serving(&wrong);
    let dir = TempDir::new("fetch-md5");
    let error = fetch(&spec_for(&good), &server.url(), dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&md5_hex(&good)) && error.contains(&md5_hex(&wrong)),
        "{error}"
    );
    assert!(error.contains("checksum mismatch"), "{error}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn http_errors_and_no_server_are_clear_errors() {
    let bytes = small_cifar10(5);
    let server = serving(&bytes);
    server.behaviour.lock().unwrap().status = Some(503);
    let dir = TempDir::new("fetch-http");
    let error = fetch(&spec_for(&bytes), &server.url(), dir.path(), false).unwrap_err();
    assert!(error.to_string().contains("HTTP 503"), "{error}");
    let missing = ArchiveSpec {
        file: "nothing-here.tar.gz".into(),
        ..spec_for(&bytes)
    };
    server.behaviour.lock().unwrap().status = None;
    let error = fetch(&missing, &server.url(), dir.path(), false).unwrap_err();
    assert!(error.to_string().contains("HTTP 404"), "{error}");
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let fresh = dir.path().join("new-data");
    let error = fetch(&spec_for(&bytes), &url, &fresh, false).unwrap_err();
    assert!(
        error.to_string().contains("cannot reach the server"),
        "{error}"
    );
    assert!(
        !fresh.exists(),
        "the folder made for the download is removed"
    );
    assert_nothing_unpacked(dir.path());
}

/// Archives whose checksum is right (the spec is built from them) but whose contents are
/// not what a CIFAR-10 archive may hold.
#[test]
fn bad_members_and_corrupt_archives_are_refused() {
    let data: &[u8] = b"0123";
    let good = small_cifar10(2);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("../evil", tar_gz(&[Member::File("../evil", data)])),
        ("/etc/evil", tar_gz(&[Member::File("/etc/evil", data)])),
        (
            "cifar-10-batches-bin/../../evil",
            tar_gz(&[Member::File("cifar-10-batches-bin/../../evil", data)]),
        ),
        (
            "not a regular file",
            tar_gz(&[Member::Symlink(
                "cifar-10-batches-bin/test_batch.bin",
                "/etc/passwd",
            )]),
        ),
        (
            "not a file this archive should hold",
            tar_gz(&[Member::File("cifar-10-batches-bin/run.sh", data)]),
        ),
        (
            "lacks cifar-10-batches-bin/data_batch_1.bin",
            tar_gz(&[Member::File("cifar-10-batches-bin/test_batch.bin", data)]),
        ),
        ("corrupt or truncated", good[..good.len() * 2 / 3].to_vec()),
        ("corrupt or truncated", b"not gzip at all".to_vec()),
    ];
    for (expected, bytes) in cases {
        let server = serving(&bytes);
        let dir = TempDir::new("fetch-bad");
        let error = fetch(&spec_for(&bytes), &server.url(), dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected),
            "expected `{expected}` in: {error}"
        );
        assert!(error.contains(FILE), "{error}");
        assert_nothing_unpacked(dir.path());
        assert!(
            !std::path::Path::new("/tmp/evil").exists() && !dir.path().join("../evil").exists()
        );
    }
}

/// A full disk, made by pointing the download at /dev/full: the error names the file
/// and the partial download is gone.
#[test]
fn a_full_disk_is_an_error_that_removes_the_download() {
    if !std::path::Path::new("/dev/full").exists() {
        return; // not Linux: nothing to simulate a full disk with
    }
    let bytes = small_cifar10(5);
    let server = serving(&bytes);
    let dir = TempDir::new("fetch-full");
    let part = dir.path().join(format!("{FILE}.part"));
    std::os::unix::fs::symlink("/dev/full", &part).unwrap();
    let error = fetch(&spec_for(&bytes), &server.url(), dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(".part") && error.contains("No space left"),
        "{error}"
    );
    assert!(std::fs::symlink_metadata(&part).is_err());
    assert_nothing_unpacked(dir.path());
}

#[test]
fn md5_of_a_file_is_the_independent_digest() {
    let dir = TempDir::new("md5");
    let path = dir.path().join("x");
    std::fs::write(&path, b"The quick brown fox jumps over the lazy dog").unwrap();
    // RFC 1321's well-known digest of this sentence.
    assert_eq!(md5_file(&path).unwrap(), "9e107d9d372bb6826bd81d3542a419d6");
}
