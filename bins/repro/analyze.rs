//! `repro analyze RUN_DIR...`: the figures of `analysis.jsonl` (written by `--analyze`) and
//! `analysis.md`, which says in numbers what they show.
use crate::analyze_plots;
use arbor_models::analysis::{self, AnalysisRecord, ANALYSIS_FILE};
use std::path::{Path, PathBuf};

/// One run's records, in epoch order, and a label for legends.
pub struct RunAnalysis {
    pub label: String,
    pub records: Vec<AnalysisRecord>,
}

impl RunAnalysis {
    /// The last record (the one the per-class figures show).
    pub fn last(&self) -> &AnalysisRecord {
        self.records.last().expect("checked non-empty on load")
    }

    /// Class indices from the most to the least frequent (ties by index).
    pub fn by_count(&self) -> Vec<usize> {
        let classes = &self.last().classes;
        let mut order: Vec<usize> = (0..classes.len()).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(classes[c].train_count), c));
        order
    }
}

/// Reads every run, naming the folder whose file is missing or bad.
pub fn load(dirs: &[PathBuf]) -> Result<Vec<RunAnalysis>, String> {
    let mut runs: Vec<RunAnalysis> = Vec::new();
    for dir in dirs {
        let path = dir.join(ANALYSIS_FILE);
        if !path.exists() {
            return Err(format!(
                "{}: no {ANALYSIS_FILE}; train the run with --analyze",
                dir.display()
            ));
        }
        let records = analysis::read(&path).map_err(|e| e.to_string())?;
        if records.is_empty() {
            return Err(format!("{}: holds no record", path.display()));
        }
        let c = records[0].num_classes;
        if let Some(r) = records
            .iter()
            .find(|r| r.num_classes != c || r.matrix.len() != c)
        {
            return Err(format!(
                "{}: epoch {} has {} classes and a {}-row matrix, the first record {c} classes",
                path.display(),
                r.epoch,
                r.num_classes,
                r.matrix.len()
            ));
        }
        let mut label = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if runs.iter().any(|r| r.label == label) {
            label = format!("{label} ({})", runs.len() + 1);
        }
        runs.push(RunAnalysis { label, records });
    }
    if runs.is_empty() {
        return Err("give at least one RUN_DIR".into());
    }
    Ok(runs)
}

/// Writes the figures and `analysis.md` into `out`; returns the files written.
pub fn run(dirs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>, String> {
    let runs = load(dirs)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = Vec::new();
    for (name, draw) in analyze_plots::FIGURES {
        let path = out.join(name);
        draw(&path, &runs).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
    }
    let md = out.join("analysis.md");
    arbor_models::error::write_atomic(&md, markdown(&runs).as_bytes())
        .map_err(|e| e.to_string())?;
    files.push(md);
    Ok(files)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x != 0.0 && (x.abs() >= 1e4 || x.abs() < 1e-3) => format!("{x:.3e}"),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    }
}

/// The head third and the tail third of the classes by training count.
fn head_tail(r: &RunAnalysis) -> (Vec<usize>, Vec<usize>) {
    let order = r.by_count();
    let k = order.len().div_ceil(3);
    (order[..k].to_vec(), order[order.len() - k..].to_vec())
}

fn class_values(classes: &[usize], f: impl Fn(usize) -> Option<f64>) -> Vec<f64> {
    classes.iter().filter_map(|&c| f(c)).collect()
}

/// What the figures show, with the numbers.
pub fn markdown(runs: &[RunAnalysis]) -> String {
    let mut s = String::from("# Attraction–repulsion balance and neural collapse\n\n");
    s += "Figures: `matrix.png` (the epoch-mean matrix M, log colour scale shared by all runs, classes sorted by training count), `ratio.png` (repulsion / attraction per class against its count), `collapse.png` (NC1–NC4 per evaluated epoch), `norms.png` (classifier-row and centred feature-mean norms against count).\n\n";
    s += "M[i][j] is the norm of the class-j part of the summed loss's gradient on classifier row i, averaged over the epoch's iterations in which class i is present; with mixup a mixed image counts for its two classes by lam and 1 - lam. Head / tail: the most / least frequent third of the classes.\n\n";
    s += "## Repulsion / attraction per class (last recorded epoch)\n\n| run | epoch | min | median | max | max / min | head mean | tail mean | tail / head |\n|---|---|---|---|---|---|---|---|---|\n";
    for r in runs {
        let last = r.last();
        let ratios: Vec<f64> = last.classes.iter().filter_map(|c| c.ratio).collect();
        let (head, tail) = head_tail(r);
        let ratio_of = |c: usize| last.classes[c].ratio;
        let (h, t) = (
            mean(&class_values(&head, ratio_of)),
            mean(&class_values(&tail, ratio_of)),
        );
        let lo = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().cloned().fold(0.0, f64::max);
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.label,
            last.epoch,
            fmt(lo.is_finite().then_some(lo)),
            fmt(median(&mut ratios.clone())),
            fmt((!ratios.is_empty()).then_some(hi)),
            fmt((lo > 0.0 && lo.is_finite()).then(|| hi / lo)),
            fmt(h),
            fmt(t),
            fmt(h.zip(t).and_then(|(h, t)| (h > 0.0).then(|| t / h))),
        );
    }
    s += "\nA tail / head value above 1 means the rare classes' rows are repelled more, relative to their attraction, than the frequent classes' rows — the imbalance the paper attributes to cross-entropy and that ARB-Loss is built to even out.\n\n";
    s += "## Neural collapse (first → last recorded epoch; ideal 0)\n\n| run | epochs | NC1 | NC2 feature-norm CV | NC2 classifier-norm CV | NC2 std cos | NC2 mean abs(cos + 1/(C-1)) | NC3 | NC4 |\n|---|---|---|---|---|---|---|---|---|\n";
    for r in runs {
        let (a, b) = (&r.records[0].collapse, &r.last().collapse);
        let pair = |x: Option<f64>, y: Option<f64>| format!("{} → {}", fmt(x), fmt(y));
        s += &format!(
            "| {} | {} → {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.label,
            r.records[0].epoch,
            r.last().epoch,
            pair(a.nc1, b.nc1),
            pair(a.nc2_feature_norm_cv, b.nc2_feature_norm_cv),
            pair(a.nc2_classifier_norm_cv, b.nc2_classifier_norm_cv),
            pair(a.nc2_cos_std, b.nc2_cos_std),
            pair(a.nc2_cos_etf_gap, b.nc2_cos_etf_gap),
            pair(a.nc3, b.nc3),
            pair(a.nc4, b.nc4),
        );
    }
    s += "\n## Norms against class count (last recorded epoch)\n\n| run | classifier norm head | tail | feature-mean norm head | tail |\n|---|---|---|---|---|\n";
    for r in runs {
        let last = r.last();
        let (head, tail) = head_tail(r);
        let w = |c: usize| Some(last.classes[c].classifier_norm);
        let f = |c: usize| Some(last.classes[c].feature_mean_norm);
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r.label,
            fmt(mean(&class_values(&head, w))),
            fmt(mean(&class_values(&tail, w))),
            fmt(mean(&class_values(&head, f))),
            fmt(mean(&class_values(&tail, f))),
        );
    }
    s += "\nUnder imbalance the classifier rows of frequent classes typically grow longer than the rare classes' (minority collapse); equal norms (NC2 classifier-norm CV near 0) are what a balanced collapse would give.\n";
    s
}
