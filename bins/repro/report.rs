//! Comparison tables (markdown, CSV, JSON), the paper-style grid, and PNG plots.
use arbor_models::train::report::{EpochLog, RunResult};
use arbor_models::train::LOG_FILE;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One trained variant of a comparison.
pub struct Row {
    pub label: String,
    pub dir: PathBuf,
    pub result: RunResult,
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

pub fn one_line(r: &RunResult) -> String {
    format!(
        "top-1 final {:.2}%  best {:.2}% (epoch {})  many {}  medium {}  few {}  ECE {:.2}  {:.0} img/s  {:.0}s",
        r.top1_final,
        r.top1_best,
        r.best_epoch,
        pct(r.many),
        pct(r.medium),
        pct(r.few),
        r.ece,
        r.img_per_s,
        r.wall_s
    )
}

pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| run | top-1 final | top-1 best (epoch) | many | medium | few | ECE | img/s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let x = &r.result;
        s += &format!(
            "| {} | {:.2} | {:.2} ({}) | {} | {} | {} | {:.2} | {:.0} |\n",
            r.label,
            x.top1_final,
            x.top1_best,
            x.best_epoch,
            pct(x.many),
            pct(x.medium),
            pct(x.few),
            x.ece,
            x.img_per_s
        );
    }
    s + "\nAccuracies and ECE in percent; many/medium/few and ECE at the final epoch.\n"
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from("run,top1_final,top1_best,best_epoch,many,medium,few,ece,img_per_s\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    for r in rows {
        let x = &r.result;
        s += &format!(
            "{},{:.4},{:.4},{},{},{},{},{:.4},{:.1}\n",
            r.label,
            x.top1_final,
            x.top1_best,
            x.best_epoch,
            opt(x.many),
            opt(x.medium),
            opt(x.few),
            x.ece,
            x.img_per_s
        );
    }
    s
}

fn write(path: &Path, text: &[u8]) -> Result<(), String> {
    arbor_models::error::write_atomic(path, text).map_err(|e| e.to_string())
}

/// Writes `comparison.{md,csv,json}` and the plots; returns the files written. A plot that
/// cannot be drawn (no fonts, say) is reported and skipped: the tables are what matter.
pub fn write_comparison(out: &Path, rows: &[Row]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = vec![
        out.join("comparison.md"),
        out.join("comparison.csv"),
        out.join("comparison.json"),
    ];
    write(&files[0], markdown(rows).as_bytes())?;
    write(&files[1], csv(rows).as_bytes())?;
    let json: Vec<_> = rows
        .iter()
        .map(|r| serde_json::json!({ "run": r.label, "dir": r.dir, "results": r.result }))
        .collect();
    write(
        &files[2],
        &serde_json::to_vec_pretty(&json).expect("serialisable"),
    )?;
    for (name, draw) in [
        (
            "per_class_accuracy.png",
            plot_per_class as fn(&Path, &[Row]) -> Result<(), String>,
        ),
        ("training_curves.png", plot_curves),
    ] {
        let path = out.join(name);
        match draw(&path, rows) {
            Ok(()) => files.push(path),
            Err(e) => eprintln!("warning: could not draw {}: {e}", path.display()),
        }
    }
    Ok(files)
}

/// Series colours of every plot `repro` draws (matplotlib's first six).
pub const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Per-class test accuracy against the class's training count (log axis), one line per run.
fn plot_per_class(path: &Path, rows: &[Row]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let counts = &rows[0].result.class_counts;
    let (lo, hi) = counts.iter().fold((usize::MAX, 1usize), |(l, h), &c| {
        (l.min(c.max(1)), h.max(c))
    });
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Per-class test accuracy vs training images per class",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(54)
        .build_cartesian_2d(
            (lo as f64 * 0.8..hi as f64 * 1.25).log_scale(),
            0f64..100f64,
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("training images of the class (log scale)")
        .y_desc("test accuracy (%)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, r) in rows.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut pts: Vec<(f64, f64)> = counts
            .iter()
            .zip(&r.result.per_class_acc)
            .filter_map(|(&c, a)| a.map(|a| (c.max(1) as f64, a)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(&r.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

fn read_log(dir: &Path) -> Vec<EpochLog> {
    std::fs::read_to_string(dir.join(LOG_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Training loss and test top-1 per epoch, one line per run.
fn plot_curves(path: &Path, rows: &[Row]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let logs: Vec<Vec<EpochLog>> = rows.iter().map(|r| read_log(&r.dir)).collect();
    let epochs = logs
        .iter()
        .flat_map(|l| l.last().map(|e| e.epoch))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let max_loss = logs
        .iter()
        .flatten()
        .map(|e| e.train_loss)
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.05;
    let root = BitMapBackend::new(path, (1100, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(550);
    for (area, is_loss) in [(left, true), (right, false)] {
        let (title, ymax) = if is_loss {
            ("training loss", max_loss)
        } else {
            ("test top-1 (%)", 100.0)
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(1f64..epochs, 0f64..ymax)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (r, log)) in rows.iter().zip(&logs).enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = log
                .iter()
                .filter_map(|e| {
                    let y = if is_loss {
                        Some(e.train_loss)
                    } else {
                        e.eval.as_ref().map(|v| v.top1)
                    };
                    y.map(|y| (e.epoch as f64, y))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(&r.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}
