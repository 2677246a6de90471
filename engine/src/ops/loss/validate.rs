//! Input checks of the fused losses: each problem is an error naming the row, label or
//! class, never a panic. Non-finite logits are caught by the kernel itself (it reads every
//! logit anyway), so checking them costs no extra pass over the batch.
use super::{FusedLoss, Target};
use crate::error::{invalid, Error, Result};
use crate::Tensor;

/// How far a soft-target row's sum may stray from 1.
pub const SOFT_TARGET_TOL: f64 = 1e-4;

/// The `[B, C]` of the logits, with `B, C >= 1`.
pub fn logits_shape(op: &'static str, logits: &Tensor) -> Result<(usize, usize)> {
    let &[rows, cols] = logits.dims() else {
        return Err(Error::Shape {
            op,
            msg: format!("logits must be [B, C], got {:?}", logits.shape()),
        });
    };
    if rows == 0 {
        return invalid(op, "empty batch (B = 0)");
    }
    if cols == 0 {
        return invalid(op, "no classes (C = 0)");
    }
    Ok((rows, cols))
}

/// Everything except the logits' values; returns `(B, C)`.
pub(crate) fn check(logits: &Tensor, spec: &FusedLoss, target: &Target) -> Result<(usize, usize)> {
    let op = spec.name;
    let (rows, cols) = logits_shape(op, logits)?;
    check_spec(spec, cols)?;
    // `what` names one label, `whats` several.
    let label_ok = |(what, whats): (&str, &str), y: &[usize]| -> Result<()> {
        if y.len() != rows {
            return invalid(
                op,
                format!("{} {whats} for a batch of {rows} rows", y.len()),
            );
        }
        for (i, &c) in y.iter().enumerate() {
            if c >= cols {
                return invalid(
                    op,
                    format!("row {i}: {what} {c} is out of range for {cols} classes"),
                );
            }
            if spec.offsets.get(c) == Some(&f64::NEG_INFINITY) {
                return invalid(
                    op,
                    format!("row {i}: {what} {c} has count n_{c} = 0 (its loss would be infinite)"),
                );
            }
        }
        Ok(())
    };
    match target {
        Target::Hard(y) => label_ok(("label", "labels"), y)?,
        Target::Mixup { a, b, lam } => {
            if !(0.0..=1.0).contains(lam) {
                return invalid(op, format!("mixup lam = {lam} is outside [0, 1]"));
            }
            label_ok(("mixup label a", "mixup labels a"), a)?;
            label_ok(("mixup label b", "mixup labels b"), b)?;
        }
        Target::Soft(t) => check_soft(spec, t, logits, rows, cols)?,
    }
    Ok((rows, cols))
}

fn check_spec(spec: &FusedLoss, cols: usize) -> Result<()> {
    let op = spec.name;
    for (what, v) in [
        ("offsets", &spec.offsets),
        ("margins", &spec.margins),
        ("weights", &spec.weights),
    ] {
        if !v.is_empty() && v.len() != cols {
            return invalid(op, format!("{} class {what} for {cols} classes", v.len()));
        }
    }
    let bad_class = |what: &str, v: &[f64], ok: fn(f64) -> bool| -> Result<()> {
        match v.iter().position(|&x| !ok(x)) {
            Some(j) => invalid(op, format!("class {j}: {what} {} is not allowed", v[j])),
            None => Ok(()),
        }
    };
    bad_class("offset", &spec.offsets, |o| {
        !o.is_nan() && o != f64::INFINITY
    })?;
    bad_class("margin", &spec.margins, |m| m.is_finite() && m >= 0.0)?;
    bad_class("weight", &spec.weights, |w| w.is_finite() && w > 0.0)?;
    let scalar = |what: &str, v: f64, ok: bool| -> Result<()> {
        if ok {
            Ok(())
        } else {
            invalid(op, format!("{what} = {v} is not allowed"))
        }
    };
    scalar(
        "scale",
        spec.scale,
        spec.scale.is_finite() && spec.scale > 0.0,
    )?;
    let c = spec.clamp.unwrap_or(1.0);
    scalar("clamp", c, c.is_finite() && c > 0.0)?;
    scalar(
        "focal gamma",
        spec.gamma,
        spec.gamma.is_finite() && spec.gamma >= 0.0,
    )?;
    scalar(
        "label smoothing",
        spec.smoothing,
        (0.0..1.0).contains(&spec.smoothing),
    )?;
    if spec.smoothing > 0.0 && spec.offsets.iter().any(|o| !o.is_finite()) {
        return invalid(
            op,
            "label smoothing spreads mass over every class, so no class may have count 0",
        );
    }
    Ok(())
}

fn check_soft(
    spec: &FusedLoss,
    t: &Tensor,
    logits: &Tensor,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let op = spec.name;
    if spec.gamma != 0.0 || !spec.margins.is_empty() || spec.smoothing != 0.0 {
        return invalid(
            op,
            "focal, margin and label-smoothing losses need hard or mixup targets, not soft rows",
        );
    }
    if t.dims() != [rows, cols] {
        return Err(Error::Shape {
            op,
            msg: format!("soft targets {:?} for logits [{rows}, {cols}]", t.shape()),
        });
    }
    super::super::check_same(op, logits, t)?;
    let values = t.to_vec_f64()?;
    for (i, row) in values.chunks(cols).enumerate() {
        if let Some(j) = row.iter().position(|&v| !(v.is_finite() && v >= 0.0)) {
            return invalid(
                op,
                format!("soft target [{i}, {j}] = {} is not a probability", row[j]),
            );
        }
        let sum: f64 = row.iter().sum();
        if (sum - 1.0).abs() > SOFT_TARGET_TOL {
            return invalid(op, format!("soft target row {i} sums to {sum}, not 1"));
        }
        let dropped = |j: usize| spec.offsets.get(j) == Some(&f64::NEG_INFINITY);
        if let Some(j) = (0..cols).find(|&j| row[j] > 0.0 && dropped(j)) {
            return invalid(
                op,
                format!(
                    "row {i}: soft target puts mass {} on class {j}, whose count n_{j} = 0",
                    row[j]
                ),
            );
        }
    }
    Ok(())
}
