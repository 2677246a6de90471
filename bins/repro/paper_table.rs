//! The paper table of `repro paper`: per dataset and imbalance factor, arbor's run of each
//! loss (final and best-epoch top-1 and many/medium/few) beside the published top-1 with
//! its source, and whether it was reproduced. Written as markdown, CSV and JSON.
use crate::paper::{method_of, methods, protocol};
use arbor_models::config::DatasetKind;
use arbor_models::presets::{self, Published};
use arbor_models::train::report::RunResult;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One line of the table (CSV / JSON), ours or published-only.
#[derive(Serialize)]
struct Line {
    dataset: String,
    imb: u32,
    method: String,
    preset: Option<String>,
    arch: Option<String>,
    epochs: Option<usize>,
    short_grid: bool,
    top1_final: Option<f64>,
    top1_best: Option<f64>,
    best_epoch: Option<usize>,
    many_final: Option<f64>,
    medium_final: Option<f64>,
    few_final: Option<f64>,
    many_best: Option<f64>,
    medium_best: Option<f64>,
    few_best: Option<f64>,
    published_top1: Option<f64>,
    published_source: Option<String>,
    reproduced: Option<bool>,
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn published_for(all: &[Published], method: &str, ds: DatasetKind, imb: u32) -> Option<Published> {
    all.iter()
        .find(|p| p.method == method && p.dataset == ds && p.imb == imb)
        .copied()
}

fn lines(runs: &[(String, RunResult)]) -> Vec<Line> {
    let (epochs_protocol, within) = protocol();
    let published = presets::published();
    let mut out = Vec::new();
    for ds in [DatasetKind::Cifar10Lt, DatasetKind::Cifar100Lt] {
        for imb in [100, 50, 10] {
            let ours: Vec<_> = runs
                .iter()
                .filter_map(|(n, r)| {
                    method_of(n)
                        .filter(|m| m.0 == ds && m.1 == imb)
                        .map(|m| (n, r, m))
                })
                .collect();
            if ours.is_empty() {
                continue;
            }
            for &(suffix, label, pub_name) in methods() {
                let Some((name, r, _)) = ours.iter().find(|o| o.2 .2 == suffix) else {
                    continue;
                };
                let p = pub_name.and_then(|m| published_for(&published, m, ds, imb));
                let short = r.epochs < epochs_protocol;
                out.push(Line {
                    dataset: ds.name().into(),
                    imb,
                    method: label.into(),
                    preset: Some(name.to_string()),
                    arch: Some(r.arch.clone()),
                    epochs: Some(r.epochs),
                    short_grid: short,
                    top1_final: Some(r.top1_final),
                    top1_best: Some(r.top1_best),
                    best_epoch: Some(r.best_epoch),
                    many_final: r.many,
                    medium_final: r.medium,
                    few_final: r.few,
                    many_best: r.best.many,
                    medium_best: r.best.medium,
                    few_best: r.best.few,
                    published_top1: p.map(|p| p.top1),
                    published_source: p.map(|p| p.source.to_string()),
                    reproduced: p
                        .filter(|_| !short)
                        .map(|p| (r.top1_best - p.top1).abs() <= within),
                });
            }
            // Published methods arbor does not run, for reference.
            let mut seen: Vec<&str> = ours.iter().filter_map(|o| o.2 .4).collect();
            for p in published.iter().filter(|p| p.dataset == ds && p.imb == imb) {
                if seen.contains(&p.method) {
                    continue;
                }
                seen.push(p.method);
                out.push(Line {
                    dataset: ds.name().into(),
                    imb,
                    method: p.method.into(),
                    preset: None,
                    arch: None,
                    epochs: None,
                    short_grid: false,
                    top1_final: None,
                    top1_best: None,
                    best_epoch: None,
                    many_final: None,
                    medium_final: None,
                    few_final: None,
                    many_best: None,
                    medium_best: None,
                    few_best: None,
                    published_top1: Some(p.top1),
                    published_source: Some(p.source.into()),
                    reproduced: None,
                });
            }
        }
    }
    out
}

fn markdown(lines: &[Line]) -> String {
    let (epochs_protocol, within) = protocol();
    let mut s = String::from("# CIFAR-LT, ResNet-32: arbor beside the published figures\n\n");
    let mut archs: Vec<&str> = lines.iter().filter_map(|l| l.arch.as_deref()).collect();
    archs.sort();
    archs.dedup();
    if archs.iter().any(|a| *a != "resnet32") {
        s += &format!(
            "**arbor's runs use {}, not the protocol's ResNet-32.**\n\n",
            archs.join(", ")
        );
    }
    let short: Vec<usize> = lines
        .iter()
        .filter(|l| l.short_grid)
        .filter_map(|l| l.epochs)
        .collect();
    if let Some(e) = short.iter().max() {
        s += &format!(
            "**Short grid: {e} epochs instead of the protocol's {epochs_protocol}. These numbers are not comparable with the published ones and no verdict is given.**\n\n"
        );
    }
    s += &format!("Top-1 and many / medium / few in percent. *Final*: after the last epoch; *best*: the highest top-1 over the evaluated epochs, selected on the test set as the reference reports it. *Reproduced*: best-epoch top-1 within {within} point of the published figure.\n");
    let mut group = None;
    for l in lines {
        if group != Some((&l.dataset, l.imb)) {
            group = Some((&l.dataset, l.imb));
            s += &format!("\n## {} IF {}\n\n| method | epochs | top-1 final | many / med / few final | top-1 best (epoch) | many / med / few best | published top-1 | reproduced? |\n|---|---|---|---|---|---|---|---|\n", l.dataset, l.imb);
        }
        let verdict = match (l.reproduced, l.short_grid, l.published_top1, &l.preset) {
            (_, _, _, None) if methods().iter().any(|m| m.2 == Some(l.method.as_str())) => {
                "not in this grid".to_string()
            }
            (_, _, _, None) => "not run by arbor".to_string(),
            (_, true, _, _) => "n/a (short grid)".into(),
            (Some(true), ..) => "yes".into(),
            (Some(false), ..) => format!(
                "no ({:+.1})",
                l.top1_best.unwrap_or(0.0) - l.published_top1.unwrap_or(0.0)
            ),
            (None, ..) => "no published figure".into(),
        };
        let trio = |a, b, c| format!("{} / {} / {}", pct(a), pct(b), pct(c));
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            l.method,
            l.epochs.map_or("-".into(), |e| if l.short_grid {
                format!("{e} (short)")
            } else {
                e.to_string()
            }),
            pct(l.top1_final),
            if l.preset.is_some() {
                trio(l.many_final, l.medium_final, l.few_final)
            } else {
                "-".into()
            },
            l.top1_best.map_or("-".into(), |t| format!(
                "{t:.1} ({})",
                l.best_epoch.unwrap_or(0)
            )),
            if l.preset.is_some() {
                trio(l.many_best, l.medium_best, l.few_best)
            } else {
                "-".into()
            },
            pct(l.published_top1),
            verdict
        );
    }
    s += "\nSources of the published figures (restated in shared/spec/protocol.md; see the README):\n";
    let mut sources: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.published_source.as_deref())
        .collect();
    sources.sort();
    sources.dedup();
    for src in sources {
        s += &format!("- {src}\n");
    }
    s
}

fn csv(lines: &[Line]) -> String {
    let mut s = String::from("dataset,imb,method,preset,epochs,short_grid,top1_final,top1_best,best_epoch,many_final,medium_final,few_final,many_best,medium_best,few_best,published_top1,reproduced\n");
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    for l in lines {
        s += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            l.dataset,
            l.imb,
            l.method,
            l.preset.clone().unwrap_or_default(),
            l.epochs.map_or(String::new(), |e| e.to_string()),
            l.short_grid,
            o(l.top1_final),
            o(l.top1_best),
            l.best_epoch.map_or(String::new(), |e| e.to_string()),
            o(l.many_final),
            o(l.medium_final),
            o(l.few_final),
            o(l.many_best),
            o(l.medium_best),
            o(l.few_best),
            o(l.published_top1),
            l.reproduced.map_or(String::new(), |r| r.to_string()),
        );
    }
    s
}

/// Writes `paper_table.{md,csv,json}` into `out` and returns them (markdown first).
pub fn write(out: &Path, runs: &[(String, RunResult)]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let l = lines(runs);
    let files = [
        out.join("paper_table.md"),
        out.join("paper_table.csv"),
        out.join("paper_table.json"),
    ];
    let json = serde_json::to_vec_pretty(&l).expect("serialisable");
    for (f, bytes) in files
        .iter()
        .zip([markdown(&l).into_bytes(), csv(&l).into_bytes(), json])
    {
        arbor_models::error::write_atomic(f, &bytes).map_err(|e| e.to_string())?;
    }
    Ok(files.to_vec())
}
