//! `--dataset folder` end to end: PNGs the test writes, one folder per class, trained for
//! an epoch; class names and the data's own normalisation in config.json (checked against
//! a naive computation over the written pixels); and each bad input named in the error.
mod common;
use common::{repro, stderr, tmp_dir as tmp};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Pixel (x, y) channel c of image `k` of class `class`.
fn pixel(class: usize, k: usize, x: u32, y: u32, c: usize) -> u8 {
    ((class * 60 + k * 13 + x as usize * 7 + y as usize * 3 + c * 50) % 256) as u8
}

/// Writes `counts[i]` PNGs of `side` x `side` into `root/<names[i]>/`.
fn write_classes(root: &Path, names: &[&str], counts: &[usize], side: u32) {
    for (class, (name, &n)) in names.iter().zip(counts).enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..n {
            let img = image::RgbImage::from_fn(side, side, |x, y| {
                image::Rgb([0, 1, 2].map(|c| pixel(class, k, x, y, c)))
            });
            img.save(dir.join(format!("{k:03}.png"))).unwrap();
        }
    }
}

const NAMES: [&str; 3] = ["ant", "bee", "cat"];
const COUNTS: [usize; 3] = [30, 12, 5];

fn dataset(name: &str) -> PathBuf {
    let d = tmp(name);
    write_classes(&d.join("train"), &NAMES, &COUNTS, 12);
    write_classes(&d.join("test"), &NAMES, &[3, 3, 3], 12);
    d
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--dataset",
        "folder",
        "--data",
        data.to_str().unwrap(),
        "--arch",
        "resnet8",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--quiet",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    repro(&args)
}

fn config(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap()
}

#[test]
fn a_folder_of_pngs_trains_end_to_end() {
    let d = dataset("ok");
    let out = d.join("run");
    let o = train(&d, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("results.json").is_file());
    assert!(
        !out.join("indices.json").exists(),
        "the folder is used as it is"
    );
    let data = &config(&out)["data"];
    assert_eq!(data["classes"], serde_json::json!(NAMES));
    assert_eq!(data["image_size"], 12);

    // Naive per-channel mean and population std over every written training pixel.
    for c in 0..3 {
        let values: Vec<f64> = (0..3)
            .flat_map(|class| (0..COUNTS[class]).map(move |k| (class, k)))
            .flat_map(|(class, k)| {
                (0..12 * 12).map(move |p| f64::from(pixel(class, k, p % 12, p / 12, c)) / 255.0)
            })
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let got_mean = data["normalize"]["mean"][c].as_f64().unwrap();
        let got_std = data["normalize"]["std"][c].as_f64().unwrap();
        assert!(
            (got_mean - mean).abs() < 1e-5,
            "channel {c}: mean {got_mean} vs {mean}"
        );
        assert!(
            (got_std - var.sqrt()).abs() < 1e-5,
            "channel {c}: std {got_std} vs {}",
            var.sqrt()
        );
    }

    // Fixed statistics are taken as given.
    let out = d.join("run-fixed");
    let o = train(&d, &out, &["--normalize", "0.5,0.5,0.5,0.25,0.25,0.25"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        config(&out)["data"]["normalize"]["std"],
        serde_json::json!([0.25, 0.25, 0.25])
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn imb_draws_a_subset_and_large_or_mixed_images_need_a_size() {
    let d = tmp("sized");
    write_classes(&d.join("train"), &["a", "b"], &[6, 6], 80);
    write_classes(&d.join("train"), &["c"], &[6], 70);
    write_classes(&d.join("val"), &["a", "c"], &[2, 2], 75);
    let out = d.join("run");
    let o = train(&d, &out, &[]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--image-size") && e.contains("000.png"), "{e}");

    // Above 64 pixels: RandomResizedCrop training, centre-crop testing, on val/.
    let o = train(&d, &out, &["--image-size", "72", "--imb", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let indices: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("indices.json")).unwrap()).unwrap();
    assert_eq!(indices["counts"], serde_json::json!([6, 4, 3]));
    assert_eq!(config(&out)["data"]["image_size"], 72);

    let file = d.join("subset.json");
    let o = repro(&[
        "data",
        "subset",
        "--dataset",
        "folder",
        "--data",
        d.to_str().unwrap(),
        "--imb",
        "2",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let subset: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(subset["indices"], indices["indices"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_folders_are_errors_naming_the_file() {
    let d = dataset("bad");
    let out = d.join("run");

    let o = train(&d, &out, &["--normalize", "0.5,0.5"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--normalize"),
        "{}",
        stderr(&o)
    );
    // IF 2 needs 7 images of `cat` (n_max = 47 / 3), which has 5.
    let o = train(&d, &out, &["--imb", "2"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--imb 2"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("class 2 has 5 images"),
        "{}",
        stderr(&o)
    );

    let bad = d.join("train/bee/005.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let o = train(&d, &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bee/005.png"), "{}", stderr(&o));
    write_classes(&d.join("train"), &NAMES, &COUNTS, 12);

    std::fs::create_dir_all(d.join("test/dog")).unwrap();
    write_classes(&d.join("test"), &["dog"], &[1], 12);
    let o = train(&d, &out, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("test/dog") && stderr(&o).contains("class `dog`"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d.join("test/dog")).unwrap();

    std::fs::create_dir_all(d.join("train/dog")).unwrap();
    let o = train(&d, &out, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("train/dog") && stderr(&o).contains("no .png"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing written for bad input");
    let _ = std::fs::remove_dir_all(&d);
}
