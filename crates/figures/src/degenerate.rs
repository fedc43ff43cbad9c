//! Tests shared by the figures for "nothing to show" (no finite value, a single step,
//! one class), and the Markdown note written instead of such a plot: a reader learns
//! the numbers and why there is no plot, rather than squinting at a row of dashes.

use crate::style::Fallback;
use std::collections::BTreeMap;

/// A value for a table cell: three significant decimals, a dash where undefined.
pub fn cell(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "–".into(),
    }
}

/// A note for `target` (fig1 ...) with `header` and `rows`.
pub fn note(
    target: &str,
    what: &str,
    reason: impl Into<String>,
    header: &[&str],
    rows: Vec<Vec<String>>,
) -> Fallback {
    Fallback {
        title: format!("{target}: {what}"),
        reason: reason.into(),
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// True if no series (seed -> (x, y) points) has two finite points at different x: no
/// line can be drawn, only lone dots.
pub fn no_trajectory<'a>(
    series: impl IntoIterator<Item = &'a BTreeMap<u64, Vec<(f64, f64)>>>,
) -> bool {
    !series.into_iter().any(|s| {
        s.values().any(|points| {
            let xs: Vec<f64> = points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|p| p.0)
                .collect();
            xs.iter().any(|x| (x - xs[0]).abs() > 0.0)
        })
    })
}

/// Rows (label..., seed, x, y) of `series`, for a note's table.
pub fn series_rows(labels: &[&str], series: &BTreeMap<u64, Vec<(f64, f64)>>) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (seed, points) in series {
        for (x, y) in points {
            let mut row: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
            row.extend([seed.to_string(), format!("{x:.0}"), cell(Some(*y))]);
            rows.push(row);
        }
    }
    rows
}

/// True if no entry of `values` is finite.
pub fn all_undefined<'a>(values: impl IntoIterator<Item = &'a Option<f64>>) -> bool {
    !values.into_iter().any(|v| v.is_some_and(f64::is_finite))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_points_are_no_trajectory() {
        let one: BTreeMap<u64, Vec<(f64, f64)>> = [(0, vec![(5.0, 1.0)])].into();
        let nan: BTreeMap<u64, Vec<(f64, f64)>> = [(0, vec![(0.0, f64::NAN), (5.0, 1.0)])].into();
        let two: BTreeMap<u64, Vec<(f64, f64)>> = [(0, vec![(0.0, 0.5), (5.0, 1.0)])].into();
        assert!(no_trajectory([&one, &nan]));
        assert!(!no_trajectory([&one, &two]));
        assert!(all_undefined(&[None, Some(f64::NAN)]));
        assert!(!all_undefined(&[None, Some(0.0)]));
        assert_eq!(cell(Some(f64::NAN)), "–");
    }
}
