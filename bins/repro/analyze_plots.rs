//! The PNGs of `repro analyze`; each has a title, axis labels and, with several runs, a
//! legend, so it reads on its own.
use crate::analyze::RunAnalysis;
use crate::report::COLOURS;
use arbor_models::analysis::collapse::CollapseMetrics;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

type Draw = fn(&Path, &[RunAnalysis]) -> Result<(), String>;

/// File name and drawing function of every figure.
pub const FIGURES: [(&str, Draw); 4] = [
    ("matrix.png", matrix),
    ("ratio.png", ratio),
    ("collapse.png", collapse),
    ("norms.png", norms),
];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Viridis, linearly interpolated between five of its stops; `t` in [0, 1].
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = t.clamp(0.0, 1.0) * 4.0;
    let k = (x.floor() as usize).min(3);
    let f = x - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `[lo, hi]` of the positive values, widened a little; a fallback when there are none.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return (0.1, 10.0);
    }
    if hi / lo < 1.5 {
        (lo / 1.5, hi * 1.5)
    } else {
        (lo / 1.15, hi * 1.15)
    }
}

/// `log_range` widened to whole decades, so a log axis always has labelled ticks.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = log_range(values);
    let (a, b) = (lo.log10().floor(), hi.log10().ceil());
    // A hair wider than the decades, or rounding drops the end labels.
    (10f64.powf(a) * 0.999, 10f64.powf(b.max(a + 1.0)) * 1.001)
}

/// A log-axis tick as a plain number: 0.01, 0.5, 3, 200.
fn tick(v: &f64) -> String {
    if *v >= 1.0 || *v <= 0.0 {
        format!("{v:.0}")
    } else {
        let digits = (-v.log10()).ceil() as usize;
        format!("{v:.digits$}")
    }
}

/// `M` as heatmaps, one panel per run, rows and columns sorted by training count (most
/// frequent first), one log colour scale for all panels and a colour bar.
fn matrix(path: &Path, runs: &[RunAnalysis]) -> Result<(), String> {
    let panel = 520u32;
    let root = BitMapBackend::new(path, (panel * runs.len() as u32 + 150, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let epochs: Vec<String> = runs.iter().map(|r| r.last().epoch.to_string()).collect();
    let root = root
        .titled(
            &format!(
                "Attraction-repulsion matrix M (epoch {}), classes sorted by training count, log colour scale",
                epochs.join("/")
            ),
            ("sans-serif", 20),
        )
        .map_err(err)?;
    let (lo, hi) = log_range(
        runs.iter()
            .flat_map(|r| r.last().matrix.iter().flatten().copied()),
    );
    // Beyond six decades the colours would only show rounding noise.
    let lo = lo.max(hi * 1e-6);
    let t = |v: f64| (v.ln() - lo.ln()) / (hi.ln() - lo.ln());
    let (panels, bar) = root.split_horizontally(panel * runs.len() as u32);
    for (k, r) in runs.iter().enumerate() {
        let area = panels.split_evenly((1, runs.len()))[k].clone();
        let c = r.last().num_classes;
        let order = r.by_count();
        let mut chart = ChartBuilder::on(&area)
            .caption(&r.label, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..c as f64, c as f64..0f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("class of the samples (rank by count, most frequent first)")
            .y_desc("classifier row (rank by count)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let m = &r.last().matrix;
        chart
            .draw_series(order.iter().enumerate().flat_map(|(y, &i)| {
                order.iter().enumerate().map(move |(x, &j)| {
                    let v = m[i][j];
                    let colour = if v > 0.0 {
                        viridis(t(v))
                    } else {
                        RGBColor(235, 235, 235)
                    };
                    Rectangle::new(
                        [(x as f64, y as f64), (x as f64 + 1.0, y as f64 + 1.0)],
                        colour.filled(),
                    )
                })
            }))
            .map_err(err)?;
    }
    colour_bar(&bar, lo, hi, t)
}

fn colour_bar(
    area: &DrawingArea<BitMapBackend, Shift>,
    lo: f64,
    hi: f64,
    t: impl Fn(f64) -> f64,
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(48)
        .margin_right(40)
        .y_label_area_size(100)
        .build_cartesian_2d(0f64..1f64, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc("M[i][j]  (grey: 0)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(err)?;
    let steps = 200;
    let ratio = (hi / lo).powf(1.0 / steps as f64);
    chart
        .draw_series((0..steps).map(|s| {
            let a = lo * ratio.powi(s);
            // The left third stays blank: the tick labels spill a little into the plot.
            Rectangle::new(
                [(0.35, a), (1.0, a * ratio)],
                viridis(t(a * ratio.sqrt())).filled(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// A log-log (or log-linear) scatter of one per-class value against the class's count,
/// one colour per run, drawn into `area`.
fn per_class(
    area: &DrawingArea<BitMapBackend, Shift>,
    runs: &[RunAnalysis],
    title: &str,
    y_desc: &str,
    log_y: bool,
    value: impl Fn(&RunAnalysis, usize) -> Option<f64>,
) -> Result<(), String> {
    let pts: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| {
            let last = r.last();
            (0..last.classes.len())
                .filter_map(|c| {
                    let n = last.classes[c].train_count.max(1) as f64;
                    value(r, c)
                        .filter(|v| v.is_finite() && (!log_y || *v > 0.0))
                        .map(|v| (n, v))
                })
                .collect()
        })
        .collect();
    let (xlo, xhi) = log_range(pts.iter().flatten().map(|p| p.0));
    let (ylo, yhi) = decades(pts.iter().flatten().map(|p| p.1));
    let linear_hi = pts.iter().flatten().map(|p| p.1).fold(1e-9, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64);
    let x_desc = "training images of the class (log scale)";
    macro_rules! draw {
        ($chart:expr, $y_fmt:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_labels(8)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter($y_fmt)
                .draw()
                .map_err(err)?;
            for (k, (r, p)) in runs.iter().zip(&pts).enumerate() {
                let colour = COLOURS[k % COLOURS.len()];
                chart
                    .draw_series(p.iter().map(|&q| Circle::new(q, 3, colour.filled())))
                    .map_err(err)?
                    .label(&r.label)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    if log_y {
        draw!(
            builder
                .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())
                .map_err(err)?,
            &tick
        );
    } else {
        draw!(
            builder
                .build_cartesian_2d((xlo..xhi).log_scale(), 0f64..linear_hi * 1.05)
                .map_err(err)?,
            &|v: &f64| format!("{v:.2}")
        );
    }
    Ok(())
}

fn ratio(path: &Path, runs: &[RunAnalysis]) -> Result<(), String> {
    let root = BitMapBackend::new(path, (900, 580)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    per_class(
        &root,
        runs,
        "Summed repulsion / attraction on each classifier row vs class count",
        "repulsion / attraction (log scale)",
        true,
        |r, c| r.last().classes[c].ratio,
    )?;
    root.present().map_err(err)
}

fn norms(path: &Path, runs: &[RunAnalysis]) -> Result<(), String> {
    let root = BitMapBackend::new(path, (1300, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(650);
    per_class(
        &left,
        runs,
        "Classifier-row norm vs class count",
        "||w_c||",
        false,
        |r, c| Some(r.last().classes[c].classifier_norm),
    )?;
    per_class(
        &right,
        runs,
        "Centred feature-mean norm vs class count",
        "||mu_c - mu_G|| (training set, no augmentation)",
        false,
        |r, c| Some(r.last().classes[c].feature_mean_norm),
    )?;
    root.present().map_err(err)
}

type Metric = (&'static str, fn(&CollapseMetrics) -> Option<f64>);

/// NC1–NC4 per evaluated epoch, one panel per metric, log y.
fn collapse(path: &Path, runs: &[RunAnalysis]) -> Result<(), String> {
    const METRICS: [Metric; 6] = [
        ("NC1: tr(Sw Sb+)/C", |m| m.nc1),
        ("NC2: CV of centred feature-mean norms", |m| {
            m.nc2_feature_norm_cv
        }),
        ("NC2: CV of classifier-row norms", |m| {
            m.nc2_classifier_norm_cv
        }),
        ("NC2: mean |cos + 1/(C-1)| of centred means", |m| {
            m.nc2_cos_etf_gap
        }),
        ("NC3: ||W/||W|| - M/||M||||^2", |m| m.nc3),
        ("NC4: share disagreeing with nearest mean", |m| m.nc4),
    ];
    let root = BitMapBackend::new(path, (1350, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            "Neural-collapse metrics per evaluated epoch (training set; lower is more collapsed)",
            ("sans-serif", 20),
        )
        .map_err(err)?;
    let last_epoch = runs
        .iter()
        .flat_map(|r| r.records.iter().map(|x| x.epoch))
        .max()
        .unwrap_or(1);
    let first_epoch = runs
        .iter()
        .flat_map(|r| r.records.iter().map(|x| x.epoch))
        .min()
        .unwrap_or(1);
    let (x0, x1) = if last_epoch > first_epoch {
        (first_epoch as f64, last_epoch as f64)
    } else {
        (first_epoch as f64 - 0.5, first_epoch as f64 + 0.5)
    };
    for (area, (title, get)) in root.split_evenly((2, 3)).iter().zip(METRICS) {
        let series: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .map(|r| {
                r.records
                    .iter()
                    .filter_map(|x| {
                        get(&x.collapse)
                            .filter(|v| *v > 0.0)
                            .map(|v| (x.epoch as f64, v))
                    })
                    .collect()
            })
            .collect();
        let (lo, hi) = decades(series.iter().flatten().map(|p| p.1));
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(62)
            .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("value (log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&tick)
            .x_labels((x1 - x0 + 1.0).clamp(2.0, 10.0) as usize)
            .draw()
            .map_err(err)?;
        for (k, (r, p)) in runs.iter().zip(&series).enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(p.clone(), colour.stroke_width(2)))
                .map_err(err)?
                .label(&r.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(p.iter().map(|&q| Circle::new(q, 3, colour.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}
