//! `repro export` / `repro eval` / `repro train --init-from` as a user runs them: figures
//! that match the run's own results.json, per-image predictions, and files that do not fit
//! answered with a message naming the tensor and a non-zero exit.
mod common;
use common::{repro, tmp};
use std::path::Path;
use std::process::Output;

const DATA: &[&str] = &[
    "--dataset",
    "synthetic-lt",
    "--classes",
    "4",
    "--synthetic-max",
    "40",
    "--imb",
    "10",
    "--threads",
    "2",
];

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train", "--arch", "resnet8", "--epochs", "2", "--batch", "32",
    ];
    args.extend_from_slice(&["--schedule", "cosine", "--quiet", "--out"]);
    args.push(out.to_str().unwrap());
    args.extend_from_slice(DATA);
    args.extend_from_slice(extra);
    repro(&args)
}

fn eval(weights: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["eval", "--weights", weights.to_str().unwrap()];
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    args.extend_from_slice(DATA);
    args.extend_from_slice(extra);
    repro(&args)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn export_then_eval_reproduces_the_runs_figures() {
    let run = tmp("run");
    ok(&train(&run, &[]));
    let results = json(&run.join("results.json"));
    for which in ["final", "best"] {
        let file = run.join(format!("{which}.export.safetensors"));
        let out = ok(&repro(&[
            "export",
            run.to_str().unwrap(),
            "--which",
            which,
            "--out",
            file.to_str().unwrap(),
        ]));
        assert!(out.contains(&format!("{which} weights")), "{out}");
        let dir = run.join(format!("eval-{which}"));
        ok(&eval(&file, &dir, &[]));
        let r = json(&dir.join("results.json"));
        let key = if which == "final" {
            "top1_final"
        } else {
            "top1_best"
        };
        assert_eq!(r["top1"], results[key], "{which}");
        assert_eq!(r["samples"], 400);
        assert_eq!(r["arch"], "resnet8");
        let csv = std::fs::read_to_string(dir.join("predictions.csv")).unwrap();
        // Top-1 recomputed from predictions.csv agrees with results.json.
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        let correct = rows.iter().filter(|r| r[1] == r[2]).count();
        let top1 = r["top1"].as_f64().unwrap();
        assert!((100.0 * correct as f64 / rows.len() as f64 - top1).abs() < 1e-9);
        for row in &rows {
            let top5: Vec<&str> = row[4].split(' ').collect();
            assert_eq!((top5.len(), top5[0]), (4, row[2]), "{row:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn files_that_do_not_fit_are_refused_with_the_tensor_named() {
    let run = tmp("bad");
    ok(&train(&run, &[]));
    ok(&repro(&["export", run.to_str().unwrap()]));
    let file = run.join("model.safetensors");
    let out = run.join("eval");

    let o = eval(&file, &out, &["--arch", "resnet20"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("does not fit resnet20 with 4 classes"), "{e}");
    assert!(
        e.contains("layer1.1.conv1.weight: expected [16, 16, 3, 3], missing"),
        "{e}"
    );

    let bytes = std::fs::read(&file).unwrap();
    let cut = run.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = eval(&cut, &out, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("cut.safetensors: not a readable safetensors file"));
    assert!(!out.exists(), "a refused evaluation wrote output");

    let o = repro(&["export", run.to_str().unwrap(), "--which", "median"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--which: unknown `median`"));
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn init_from_says_the_classifier_was_reinitialised_and_inputs_can_be_saved() {
    let src = tmp("src");
    ok(&train(&src, &[]));
    ok(&repro(&["export", src.to_str().unwrap()]));
    let file = src.join("model.safetensors");
    let dst = tmp("dst");
    let mut args = vec![
        "train", "--arch", "resnet8", "--epochs", "1", "--batch", "32", "--quiet",
    ];
    args.extend_from_slice(&[
        "--out",
        dst.to_str().unwrap(),
        "--init-from",
        file.to_str().unwrap(),
    ]);
    args.extend_from_slice(&[
        "--freeze-backbone",
        "--dataset",
        "synthetic-lt",
        "--classes",
        "5",
    ]);
    args.extend_from_slice(&["--synthetic-max", "40", "--imb", "10"]);
    let o = repro(&args);
    ok(&o);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("classifier re-initialised: the file's fc.weight is [4, 64]"),
        "{e}"
    );
    assert!(e.contains("backbone frozen"), "{e}");

    let inputs = src.join("inputs.safetensors");
    ok(&eval(
        &file,
        &src.join("eval"),
        &["--save-inputs", inputs.to_str().unwrap()],
    ));
    let bytes = std::fs::read(&inputs).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(
        header["images"]["shape"],
        serde_json::json!([400, 3, 32, 32])
    );
    assert_eq!(header["labels"]["dtype"], "I64");
    for d in [src, dst] {
        let _ = std::fs::remove_dir_all(d);
    }
}
