//! Print formats and print sizes: the PDF backend writes a well-formed file that poppler
//! reads, a figure's text is at least 7 pt at its print width, and a figure with nothing
//! to show is written as a note with a table instead of a degenerate plot.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // tests; the "SKIPPED" lines

mod common;

use common::font;
use figures::fig1::Fig1;
use figures::fig7::Fig7;
use figures::fig10::Fig10;
use figures::load::{MetricRow, Pc1Row};
use figures::pdf::PdfBackend;
use figures::style::{self, Figure, type_size};
use plotters::prelude::*;
use std::path::Path;

/// Check the file's skeleton: header, every xref offset pointing at its object, trailer.
fn assert_well_formed(pdf: &[u8]) {
    assert!(pdf.starts_with(b"%PDF-1.4\n"), "header");
    // One char per byte, so offsets into the text are byte offsets.
    let text: String = pdf
        .iter()
        .map(|&b| if b.is_ascii() { b as char } else { '?' })
        .collect();
    assert!(text.ends_with("%%EOF\n"), "end marker");
    let start: usize = text
        .rsplit("startxref\n")
        .next()
        .and_then(|t| t.lines().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        text[start..].starts_with("xref\n0 "),
        "startxref points at the xref table"
    );
    let mut lines = text[start..].lines().skip(1);
    let count: usize = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(lines.next().unwrap(), "0000000000 65535 f ");
    for n in 1..count {
        let entry = lines.next().unwrap();
        assert_eq!(
            entry.len(),
            19,
            "xref entries are 20 bytes with the newline"
        );
        let offset: usize = entry[..10].parse().unwrap();
        assert!(
            text[offset..].starts_with(&format!("{n} 0 obj\n")),
            "xref entry {n} points at its object"
        );
    }
    let trailer = &text[text.rfind("trailer").unwrap()..];
    assert!(trailer.contains(&format!("/Size {count}")) && trailer.contains("/Root 1 0 R"));
    // The content stream's declared length is its length.
    let at = text.find("/Length ").unwrap() + 8;
    let len: usize = text[at..].split(' ').next().unwrap().parse().unwrap();
    let body = text[at..].find("stream\n").unwrap() + at + 7;
    assert!(text[body + len..].starts_with("endstream"), "stream length");
}

/// Run a poppler tool on `path` (its text on stdout), or None (with a SKIPPED line) when
/// it is not installed.
fn poppler(tool: &str, args: &[&str], path: &Path) -> Option<String> {
    let mut cmd = std::process::Command::new(tool);
    cmd.args(args).arg(path);
    if tool == "pdftotext" {
        // Text to stdout rather than to a file beside the PDF.
        cmd.arg("-");
    }
    match cmd.output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(_) => {
            println!("SKIPPED: {tool} not found (Debian: apt install poppler-utils)");
            None
        }
    }
}

#[test]
fn the_pdf_backend_writes_a_file_poppler_reads() {
    let mut bytes = Vec::new();
    {
        let root = PdfBackend::new(&mut bytes, (800, 500), 504.0).into_drawing_area();
        root.fill(&WHITE).unwrap();
        let mut chart = ChartBuilder::on(&root)
            .caption("Drift (x100) ± sd, ρ", ("sans-serif", 30))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..10.0, 0.0..1.0)
            .unwrap();
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc("rate")
            .draw()
            .unwrap();
        chart
            .draw_series(LineSeries::new(
                (0..10).map(|x| (f64::from(x), 0.1 * f64::from(x))),
                RED.stroke_width(3),
            ))
            .unwrap();
        chart
            .draw_series([Circle::new((5.0, 0.5), 6, BLUE.mix(0.5).filled())])
            .unwrap();
        chart
            .draw_series([Polygon::new(
                vec![(1.0, 0.1), (2.0, 0.9), (3.0, 0.1)],
                GREEN.filled(),
            )])
            .unwrap();
        root.present().unwrap();
    }
    assert_well_formed(&bytes);
    let text = String::from_utf8_lossy(&bytes);
    for s in [
        "(training step) Tj",
        "(rate) Tj",
        "/BaseFont /Helvetica",
        "/GA50 gs",
    ] {
        assert!(text.contains(s), "the PDF lacks `{s}`");
    }
    // 800 px drawn on a 504 pt page: 7 in wide, 4.375 in high.
    assert!(text.contains("/MediaBox [0 0 504 315]"), "page size");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("chart.pdf");
    std::fs::write(&path, &bytes).unwrap();
    if let Some(info) = poppler("pdfinfo", &[], &path) {
        let pages = info.lines().find(|l| l.starts_with("Pages:"));
        assert_eq!(
            pages.map(|l| l.split_whitespace().last()),
            Some(Some("1")),
            "{info}"
        );
        assert!(info.contains("504 x 315 pts"), "{info}");
    }
    if let Some(words) = poppler("pdftotext", &["-layout"], &path) {
        for s in ["training step", "rate", "Drift (x100) ± sd, ρ"] {
            assert!(words.contains(s), "pdftotext finds no `{s}` in {words}");
        }
    }
}

/// A small Fig10 (public fields): two traits, correlations `raw`.
fn fig10(raw: Vec<Vec<Option<f64>>>) -> Fig10 {
    Fig10 {
        traits: vec!["honesty".into(), "sycophancy".into()],
        partial: raw.clone(),
        raw,
        checkpoints: 12,
    }
}

#[test]
fn every_figure_file_is_written_and_its_text_is_legible_in_print() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fig = fig10(vec![vec![Some(0.8), Some(-0.2)], vec![Some(0.1), None]]);
    let size = (2000, 2000);
    let files = style::render_both(tmp.path(), "fig10", size, &fig).unwrap();
    for ext in ["png", "svg", "pdf"] {
        assert!(
            files.contains(&tmp.path().join(format!("fig10.{ext}"))),
            "{ext}"
        );
    }
    // Every font size in the SVG, printed at the figure's print width, is at least 7 pt.
    let svg = std::fs::read_to_string(tmp.path().join("fig10.svg")).unwrap();
    let sizes: Vec<f64> = svg
        .split("font-size=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert!(!sizes.is_empty());
    let px_per_pt = type_size::px_per_pt(size.0);
    for em in sizes {
        assert!(
            em / px_per_pt >= 7.0 - 1e-6,
            "text at {:.2} pt",
            em / px_per_pt
        );
    }
    let pdf = std::fs::read(tmp.path().join("fig10.pdf")).unwrap();
    assert_well_formed(&pdf);
    if let Some(words) = poppler("pdftotext", &[], &tmp.path().join("fig10.pdf")) {
        assert!(
            words.contains("sycophancy") && words.contains("+0.80"),
            "{words}"
        );
    }
}

fn metric(held_out: &str, positives: u64, fnr: Option<f64>) -> MetricRow {
    MetricRow {
        split: "lopo".into(),
        sweep: false,
        tau: Some(0.05),
        scope: "smollm2-135m".into(),
        held_out: held_out.into(),
        feature_set: "alignment".into(),
        regressor: "random_forest".into(),
        n: 4,
        positives,
        negatives: 4 - positives,
        fnr,
        fnr_ci: None,
        fpr: Some(0.0),
        fpr_ci: None,
        balanced_accuracy: None,
        auroc: None,
        auroc_ci: None,
    }
}

#[test]
fn a_figure_with_nothing_to_show_is_a_note_with_its_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    // fig7: no held-out perturbation has a dangerous checkpoint, so every FNR is a dash.
    let rows = [metric("gsm8k", 0, None), metric("insecure_code", 0, None)];
    let fig = Fig7::new(&rows).unwrap();
    // A stale plot from an earlier run goes, so it is not mistaken for this one.
    std::fs::write(tmp.path().join("fig7.png"), b"old").unwrap();
    let files = style::render_both(tmp.path(), "fig7", (1600, 1000), &fig).unwrap();
    assert_eq!(files, vec![tmp.path().join("fig7.md")]);
    assert!(!tmp.path().join("fig7.png").exists());
    let md = std::fs::read_to_string(tmp.path().join("fig7.md")).unwrap();
    assert!(
        md.contains("No plot: no held-out perturbation has a dangerous checkpoint"),
        "{md}"
    );
    assert!(
        md.contains("| model | held out | FNR | dangerous | FPR | benign |"),
        "{md}"
    );
    assert!(
        md.contains("| smollm2-135m | gsm8k | – | 0 | 0.000 | 4 |"),
        "{md}"
    );
    // With one defined FNR the grid says something: a plot.
    let rows = [
        metric("gsm8k", 0, None),
        metric("bad_medical", 3, Some(1.0)),
    ];
    assert!(Fig7::new(&rows).unwrap().fallback().is_none());

    // fig10: every correlation undefined (all-NaN); one defined one is a plot.
    assert!(
        fig10(vec![vec![None, None], vec![None, None]])
            .fallback()
            .is_some()
    );
    assert!(
        fig10(vec![vec![None, Some(0.5)], vec![None, None]])
            .fallback()
            .is_none()
    );

    // fig1: every run a single checkpoint (one class of step): dots, not trajectories.
    let pc1 = |pert: &str, step: u64| Pc1Row {
        model: "m".into(),
        perturbation: pert.into(),
        seed: 1,
        step,
        abs_pc1: 0.1,
        signed_pc1: 0.1,
        drift_norm: 0.1,
        cosine_to_pc1: 1.0,
    };
    let one = [pc1("bad_medical", 40), pc1("number_sequence", 40)];
    let note = Fig1::new(&one, &[]).unwrap().fallback().unwrap();
    assert!(note.reason.contains("no trajectory"), "{}", note.reason);
    assert_eq!(note.rows.len(), 2);
    let two = [pc1("bad_medical", 0), pc1("bad_medical", 40)];
    assert!(Fig1::new(&two, &[]).unwrap().fallback().is_none());
}
