//! What a run folder guarantees (README, "A run folder"), tested as a user meets it:
//! `--force` never deletes what arbor did not write, one process per folder, checksummed
//! checkpoints, recovery after a kill at any moment, `config.json` kept true, and no temp
//! file left by a failed write.
mod common;
use common::{repro, tmp};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A run of a few seconds; `max` sets the largest class (and so the epoch's length).
fn run_args(out: &Path, max: &str, epochs: &str) -> Vec<String> {
    [
        "train",
        "--dataset",
        "synthetic-lt",
        "--classes",
        "4",
        "--synthetic-max",
        max,
        "--imb",
        "10",
        "--arch",
        "resnet8",
        "--epochs",
        epochs,
        "--batch",
        "32",
        "--schedule",
        "cosine",
        "--quiet",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn train(out: &Path, extra: &[&str]) -> Output {
    let mut a = run_args(out, "40", "3");
    a.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    repro(&a)
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "repro failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn failed_with(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "repro should have failed: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    err
}

/// The results that must not depend on how the run was interrupted.
fn outcome(out: &Path) -> Vec<serde_json::Value> {
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    [
        "top1_final",
        "top1_best",
        "best_epoch",
        "ece",
        "per_class_acc",
    ]
    .iter()
    .map(|k| r[*k].clone())
    .collect()
}

fn log_epochs(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn reference() -> Vec<serde_json::Value> {
    static REF: std::sync::OnceLock<Vec<serde_json::Value>> = std::sync::OnceLock::new();
    REF.get_or_init(|| {
        let d = tmp("reference");
        ok(&train(&d, &[]));
        let r = outcome(&d);
        let _ = std::fs::remove_dir_all(d);
        r
    })
    .clone()
}

#[test]
fn force_never_deletes_a_folder_that_is_not_a_run() {
    let d = tmp("notrun");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("n"), b"x").unwrap();
    let o = train(&d, &["--force"]);
    failed_with(&o, &["--force", "nothing was deleted"]);
    assert_eq!(std::fs::read(d.join("n")).unwrap(), b"x");
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        1,
        "files were added"
    );

    // A run folder with a file of the user's in it: refused too, nothing deleted.
    let r = tmp("runplus");
    ok(&train(&r, &[]));
    std::fs::write(r.join("notes.txt"), b"mine").unwrap();
    let before = std::fs::read(r.join("checkpoint.bin")).unwrap();
    failed_with(
        &train(&r, &["--force"]),
        &["notes.txt", "nothing was deleted"],
    );
    assert_eq!(std::fs::read(r.join("checkpoint.bin")).unwrap(), before);
    std::fs::remove_file(r.join("notes.txt")).unwrap();
    // Without it, --force replaces the run (the folder itself stays).
    ok(&train(&r, &["--force", "--loss", "ce"]));
    let cfg = std::fs::read_to_string(r.join("config.json")).unwrap();
    assert!(cfg.contains("\"loss\": \"ce\""), "{cfg}");
    let _ = std::fs::remove_dir_all(d);
    let _ = std::fs::remove_dir_all(r);
}

#[test]
fn a_second_process_on_a_locked_folder_is_refused() {
    let d = tmp("locked");
    let mut first = Command::new(env!("CARGO_BIN_EXE_repro"))
        .args(run_args(&d, "200", "4"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run has its folder and has begun training.
    let t0 = Instant::now();
    while !d.join("config.json").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "first run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = first.id().to_string();
    let o = train(&d, &["--force", "--loss", "ce"]);
    failed_with(&o, &["in use", &pid]);
    let o = train(&d, &["--resume"]);
    failed_with(&o, &["in use"]);
    let status = first.wait().unwrap();
    assert!(status.success(), "the first run must finish cleanly");
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    assert!(cfg.contains("\"loss\": \"arb\""), "{cfg}");
    assert_eq!(log_epochs(&d), vec![1, 2, 3, 4]);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_flipped_byte_in_a_weight_is_refused() {
    let d = tmp("flip");
    ok(&train(&d, &["--stop-after", "1"]));
    let path = d.join("checkpoint.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    // The weights sit in the middle of the payload: flip an exponent bit there.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    failed_with(&train(&d, &["--resume"]), &["checkpoint.bin", "CRC-32"]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the checkpoint was overwritten"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_run_killed_after_its_first_log_line_resumes_to_the_same_results() {
    let want = reference();
    let d = tmp("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_repro"))
        .args(run_args(&d, "40", "3"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(d.join("log.jsonl")).unwrap_or_default();
        if log.contains("\"epoch\":1") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no epoch-1 line");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !d.join("results.json").exists(),
        "the run finished before the kill"
    );
    ok(&train(&d, &["--resume"]));
    assert_eq!(outcome(&d), want);
    assert_eq!(log_epochs(&d), vec![1, 2, 3]);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn kills_at_every_moment_of_the_checkpoint_write_recover() {
    let want = reference();
    // Killed between the log line and the checkpoint: a log line ahead of the checkpoint.
    let d = tmp("logahead");
    ok(&train(&d, &["--stop-after", "1"]));
    let line = std::fs::read_to_string(d.join("log.jsonl")).unwrap();
    let ahead = line.replace("\"epoch\":1", "\"epoch\":2");
    std::fs::write(d.join("log.jsonl"), format!("{line}{ahead}{{\"epo")).unwrap();
    let plain = train(&d, &[]);
    failed_with(&plain, &["after epoch 1 of 3", "--resume"]);
    ok(&train(&d, &["--resume"]));
    assert_eq!(outcome(&d), want);
    assert_eq!(log_epochs(&d), vec![1, 2, 3]);

    // Killed after the temp checkpoint was written, before its rename: adopted.
    let t = tmp("tempnewer");
    ok(&train(&t, &["--stop-after", "1"]));
    let epoch1 = std::fs::read(t.join("checkpoint.bin")).unwrap();
    ok(&train(&t, &["--resume", "--stop-after", "2"]));
    std::fs::rename(t.join("checkpoint.bin"), t.join("checkpoint.bin.tmp")).unwrap();
    std::fs::write(t.join("checkpoint.bin"), &epoch1).unwrap();
    failed_with(
        &train(&t, &[]),
        &["checkpoint.bin.tmp", "--resume will adopt"],
    );
    let o = train(&t, &["--resume"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("adopted"));
    assert!(!t.join("checkpoint.bin.tmp").exists());
    assert_eq!(outcome(&t), want);
    assert_eq!(log_epochs(&t), vec![1, 2, 3]);

    // Killed mid-write of the temp file: it is removed, the older checkpoint continues.
    let h = tmp("temphalf");
    ok(&train(&h, &["--stop-after", "1"]));
    let full = std::fs::read(h.join("checkpoint.bin")).unwrap();
    std::fs::write(h.join("checkpoint.bin.tmp"), &full[..full.len() / 3]).unwrap();
    ok(&train(&h, &["--resume"]));
    assert!(!h.join("checkpoint.bin.tmp").exists());
    assert_eq!(outcome(&h), want);

    // Killed before the first checkpoint: --resume starts again from epoch 1.
    let f = tmp("nocheckpoint");
    ok(&train(&f, &["--stop-after", "1"]));
    std::fs::remove_file(f.join("checkpoint.bin")).unwrap();
    failed_with(&train(&f, &[]), &["no checkpoint yet", "--resume"]);
    ok(&train(&f, &["--resume"]));
    assert_eq!(outcome(&f), want);
    assert_eq!(log_epochs(&f), vec![1, 2, 3]);
    for x in [d, t, h, f] {
        let _ = std::fs::remove_dir_all(x);
    }
}

#[test]
fn config_json_is_restored_or_checked_on_resume() {
    let d = tmp("config");
    ok(&train(&d, &["--stop-after", "1"]));
    let original = std::fs::read_to_string(d.join("config.json")).unwrap();
    std::fs::remove_file(d.join("config.json")).unwrap();
    ok(&train(&d, &["--resume", "--stop-after", "2"]));
    assert_eq!(
        std::fs::read_to_string(d.join("config.json")).unwrap(),
        original
    );

    let edited = original.replace("\"ResNet8\"", "\"ResNet20\"");
    assert_ne!(edited, original);
    std::fs::write(d.join("config.json"), &edited).unwrap();
    failed_with(&train(&d, &["--resume"]), &["config.json", "arch"]);
    std::fs::write(d.join("config.json"), &original).unwrap();

    // Flags that differ from the run are named.
    failed_with(
        &train(&d, &["--resume", "--lr", "0.05"]),
        &["lr (saved 0.1, given 0.05)"],
    );
    ok(&train(&d, &["--resume"]));
    let _ = std::fs::remove_dir_all(d);
}

/// A tmpfs too small for the checkpoint: the write fails with the disk's error, and no
/// temp file is left taking the space. Needs root for `mount`; skips with a reason else.
#[test]
fn a_full_disk_leaves_no_temp_file() {
    let m = tmp("tmpfs");
    std::fs::create_dir_all(&m).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=200k",
            "tmpfs",
            m.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); the injected write error of models' error::tests covers the same path");
        let _ = std::fs::remove_dir_all(m);
        return;
    }
    let d = m.join("run");
    let o = train(&d, &[]);
    let err = failed_with(&o, &[".tmp: No space left"]);
    let leftovers: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    let _ = Command::new("umount").arg(&m).status();
    let _ = std::fs::remove_dir_all(&m);
    assert!(
        leftovers.is_empty(),
        "temp files left: {leftovers:?} ({err})"
    );
}

#[test]
fn bad_flags_are_named_before_anything_trains() {
    let d = tmp("flags");
    let dir = d.to_str().unwrap();
    let base = [
        "--dataset",
        "synthetic-lt",
        "--classes",
        "4",
        "--synthetic-max",
        "40",
        "--quiet",
        "--out",
        dir,
    ];
    let with = |cmd: &str, extra: &[&str]| {
        let mut a = vec![cmd];
        a.extend_from_slice(&base);
        a.extend_from_slice(extra);
        repro(&a)
    };
    failed_with(
        &with("compare", &["--losses", "ce,ce"]),
        &["--losses", "ce"],
    );
    failed_with(
        &with("compare", &["--losses", "arb,arb:batch"]),
        &["same run"],
    );
    failed_with(&with("compare", &["--losses", ""]), &["--losses"]);
    failed_with(
        &with("compare", &["--losses", "ce,,arb"]),
        &["--losses", "empty"],
    );
    failed_with(
        &with("train", &["--threads", "100000"]),
        &["--threads", "at most"],
    );
    failed_with(
        &with("train", &["--threads", "18446744073709551615"]),
        &["--threads"],
    );
    failed_with(&with("train", &["--imb", "100"]), &["--imb 100", "class 3"]);
    assert!(!d.exists(), "a refused command created {dir}");
    let file = std::env::temp_dir().join(format!("arbor-afile-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    let o = repro(&[
        "train",
        "--dataset",
        "cifar10-lt",
        "--data",
        file.to_str().unwrap(),
    ]);
    failed_with(&o, &["is a file"]);
    let _ = std::fs::remove_file(file);
}
