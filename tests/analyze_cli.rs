//! `repro train --analyze` then `repro analyze`: the figures and analysis.md of two short
//! synthetic runs, and a clear error for a run without analysis.
mod common;
use common::{repro, tmp};
use std::path::Path;

fn train(out: &Path, loss: &str) {
    let o = repro(&[
        "train",
        "--dataset",
        "synthetic-lt",
        "--classes",
        "5",
        "--synthetic-max",
        "40",
        "--imb",
        "10",
        "--arch",
        "resnet8",
        "--epochs",
        "2",
        "--batch",
        "32",
        "--schedule",
        "cosine",
        "--loss",
        loss,
        "--analyze",
        "--analyze-every",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn analyze_draws_every_figure_and_states_the_numbers() {
    let root = tmp("runs");
    let (ce, arb, fig) = (root.join("ce"), root.join("arb"), root.join("fig"));
    train(&ce, "ce");
    train(&arb, "arb");
    let o = repro(&[
        "analyze",
        ce.to_str().unwrap(),
        arb.to_str().unwrap(),
        "--out",
        fig.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["matrix.png", "ratio.png", "collapse.png", "norms.png"] {
        let bytes = std::fs::read(fig.join(name)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
        assert!(
            bytes.len() > 10_000,
            "{name} is nearly empty ({} bytes)",
            bytes.len()
        );
    }
    let md = std::fs::read_to_string(fig.join("analysis.md")).unwrap();
    // The largest repulsion/attraction ratio of each run's last record is in the table.
    for (dir, label) in [(&ce, "ce"), (&arb, "arb")] {
        let last: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(dir.join("analysis.jsonl"))
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(last["epoch"], 2);
        let max = last["classes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["ratio"].as_f64())
            .fold(0.0, f64::max);
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {label} | 2 |")))
            .unwrap_or_else(|| panic!("no ratio row for {label} in\n{md}"));
        assert!(
            row.contains(&format!("| {max:.3} |")),
            "{row} lacks max {max:.3}"
        );
    }
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn analyze_names_a_run_without_analysis() {
    let d = tmp("empty");
    std::fs::create_dir_all(&d).unwrap();
    let o = repro(&[
        "analyze",
        d.to_str().unwrap(),
        "--out",
        d.join("fig").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("analysis.jsonl") && err.contains("--analyze"),
        "{err}"
    );
    assert!(!d.join("fig").exists(), "nothing may be written on error");
    let _ = std::fs::remove_dir_all(d);
}
