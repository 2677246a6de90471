//! `repro paper` on two presets of a one-epoch grid over CIFAR-10 binary files the test
//! writes: the table (markdown, CSV, JSON) holds the runs' own numbers, a second call
//! reuses them, and a changed configuration is refused by name.
mod common;
use common::{repro, tmp};
use std::io::Write;
use std::path::Path;
use std::process::Output;

/// CIFAR-10 binary files: 5 x 10 000 training and 10 000 test records (what the reader
/// insists on), label `i % 10`, pixels a function of the label and the record.
fn write_cifar10(root: &Path) {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (f, name) in names.iter().enumerate() {
        let mut bytes = Vec::with_capacity(10_000 * 3073);
        for i in 0..10_000usize {
            let label = (i % 10) as u8;
            bytes.push(label);
            bytes
                .extend((0..3072usize).map(|p| (label as usize * 23 + (p * 7 + i + f) % 31) as u8));
        }
        std::fs::File::create(dir.join(name))
            .unwrap()
            .write_all(&bytes)
            .unwrap();
    }
}

const PRESETS: &str = "cifar10-lt-if100-ce,cifar10-lt-if100-arb";

fn paper(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "paper",
        "--data-root",
        data.to_str().unwrap(),
        "--only",
        PRESETS,
        "--epochs",
        "1",
        "--arch",
        "resnet8",
        "--batch",
        "256",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    repro(&args)
}

#[test]
fn a_short_grid_builds_its_table_reuses_runs_and_refuses_a_changed_config() {
    let (data, out) = (tmp("data"), tmp("out"));
    write_cifar10(&data);
    let o = paper(&data, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("projected wall time"), "{err}");

    let md = std::fs::read_to_string(out.join("paper_table.md")).unwrap();
    assert!(md.contains("Short grid: 1 epochs"), "{md}");
    let csv = std::fs::read_to_string(out.join("paper_table.csv")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("paper_table.json")).unwrap()).unwrap();
    for (preset, method) in [
        ("cifar10-lt-if100-ce", "cross-entropy"),
        ("cifar10-lt-if100-arb", "ARB (batch counts)"),
    ] {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(preset).join("results.json")).unwrap())
                .unwrap();
        let top1 = r["top1_final"].as_f64().unwrap();
        let line = csv
            .lines()
            .find(|l| l.contains(preset))
            .unwrap_or_else(|| panic!("{preset} not in\n{csv}"));
        assert!(
            line.starts_with(&format!(
                "cifar10-lt,100,{method},{preset},1,true,{top1:.4},"
            )),
            "{line}"
        );
        let row = json
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["preset"] == preset)
            .unwrap();
        assert_eq!(row["top1_best"], r["top1_best"]);
        assert_eq!(
            row["reproduced"],
            serde_json::Value::Null,
            "a short grid gets no verdict"
        );
        let md_row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {method} |")))
            .unwrap();
        assert!(
            md_row.contains(&format!("| {top1:.1} |")) && md_row.contains("n/a (short grid)"),
            "{md_row}"
        );
    }
    // Published figures beside them, with a source.
    assert!(csv.contains("cifar10-lt,100,LDAM-DRW,,") || md.contains("| LDAM-DRW |"));
    assert!(md.contains("Cao et al. 2019"), "{md}");

    // Same flags: both runs reused, nothing retrained.
    let before = std::fs::read(out.join("cifar10-lt-if100-ce").join("results.json")).unwrap();
    let o = paper(&data, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("reusing").count(), 2, "{err}");
    assert!(!err.contains("projected"), "{err}");

    // A changed learning rate: refused, naming the key, the run untouched.
    let o = paper(&data, &out, &["--lr", "0.05"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success());
    assert!(err.contains("keys: lr") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(out.join("cifar10-lt-if100-ce").join("results.json")).unwrap(),
        before
    );

    let o = repro(&[
        "paper",
        "--data-root",
        data.to_str().unwrap(),
        "--only",
        "cifar10-lt-if100-nope",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cifar10-lt-if100-nope"));
    let _ = std::fs::remove_dir_all(data);
    let _ = std::fs::remove_dir_all(out);
}
