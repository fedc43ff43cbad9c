//! Fig. 10: does each trait direction measure its own trait? Spearman's rho between every
//! checkpoint's drift along trait i (rows) and its behaviour on trait j's items (columns),
//! over all checkpoints with both (step 0, the base model, once per model); left raw, right
//! with the signed PC1 regressed out of both (so a shared drift along PC1 cannot make
//! every cell agree). Each panel's title gives mean |rho| on the diagonal over mean |rho|
//! off it.
//!
//! Reads `drift` (alignment feature set), `pc1` and the `trait_positive` rows of
//! `em_summary` tables; those rows exist only when `traitwatch em` ran with the trait bank
//! (`em.trait_items = true` in a manifest).

use crate::load::{Context, Pc1Row};
use crate::stats::{residuals, spearman};
use crate::style::{FONT, Figure, diverging, plot, text_on, trait_sorted};
use crate::trait_data::{Checkpoint, PerTrait, trait_behaviour, trait_drift};
use crate::{Result, axis_names, load, style};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Fewer joined checkpoints than this give no figure: rho would be noise.
const MIN_CHECKPOINTS: usize = 5;

#[derive(Debug)]
pub struct Fig10 {
    pub traits: Vec<String>,
    /// `[drift trait][behaviour trait]`, raw and with signed PC1 regressed out.
    pub raw: Vec<Vec<Option<f64>>>,
    pub partial: Vec<Vec<Option<f64>>>,
    pub checkpoints: usize,
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let drift_files = ctx.require("drift")?;
    let em_files = ctx.require("em_summary")?;
    let pc1_files = ctx.require("pc1")?;
    let behaviour = trait_behaviour(&em_files)?;
    if behaviour.is_empty() {
        return Err(ctx.no_data(
            "the `em_summary` tables hold no per-trait behaviour (`trait_positive`) rows: set \
             `em.trait_items = true` in the manifest (or run `traitwatch em` without \
             `--no-traits`)",
        ));
    }
    let drift = trait_drift(&drift_files, "alignment")?;
    let pc1 = load::pc1_rows(&pc1_files)?;
    let fig = Fig10::new(&drift, &behaviour, &pc1).ok_or_else(|| {
        let (_, joined) = joined(&drift, &behaviour, &pc1);
        ctx.no_data(format!(
            "{} checkpoint(s) have trait drift, trait behaviour and PC1 together (step 0 \
             counted once per model); fig10 needs at least {MIN_CHECKPOINTS}: run \
             `traitwatch em` with the trait items (`em.trait_items = true` in the manifest) \
             on more runs that `traitwatch drift` and `traitwatch pca` cover",
            joined.len()
        ))
    })?;
    let written = style::render_target(ctx, out, (2000, 2000), &fig)?;
    let mut inputs = drift_files;
    inputs.extend(em_files);
    inputs.extend(pc1_files);
    Ok((written, inputs))
}

impl Fig10 {
    pub fn new(drift: &PerTrait, behaviour: &PerTrait, pc1: &[Pc1Row]) -> Option<Self> {
        let (traits, joined) = joined(drift, behaviour, pc1);
        if joined.len() < MIN_CHECKPOINTS || traits.is_empty() {
            return None;
        }
        let keys: Vec<&Checkpoint> = joined.iter().map(|(k, _)| *k).collect();
        let column = |table: &PerTrait, t: &str| -> Vec<f64> {
            keys.iter()
                .map(|k| table.get(*k).and_then(|m| m.get(t)).copied().unwrap_or(0.0))
                .collect()
        };
        let pc: Vec<f64> = joined.iter().map(|(_, pc)| *pc).collect();
        let grid = |regress: bool| -> Vec<Vec<Option<f64>>> {
            traits
                .iter()
                .map(|ti| {
                    let mut d = column(drift, ti);
                    if regress {
                        d = residuals(&d, &pc);
                    }
                    traits
                        .iter()
                        .map(|tj| {
                            let mut b = column(behaviour, tj);
                            if regress {
                                b = residuals(&b, &pc);
                            }
                            spearman(&d, &b)
                        })
                        .collect()
                })
                .collect()
        };
        Some(Self {
            raw: grid(false),
            partial: grid(true),
            traits,
            checkpoints: keys.len(),
        })
    }
}

/// The traits on both sides (figure order) and the checkpoints with every one of them on
/// both sides and a signed PC1 coordinate, with that coordinate. Step 0 (the model before
/// finetuning, the same in every run) is kept once per model, so the untouched base model
/// does not weigh as many points as there are runs.
pub fn joined<'a>(
    drift: &PerTrait,
    behaviour: &'a PerTrait,
    pc1: &[Pc1Row],
) -> (Vec<String>, Vec<(&'a Checkpoint, f64)>) {
    let signed: BTreeMap<Checkpoint, f64> = pc1
        .iter()
        .map(|r| {
            let key = (r.model.clone(), r.perturbation.clone(), r.seed, r.step);
            (key, r.signed_pc1)
        })
        .collect();
    let mut names: Vec<String> = behaviour.values().flat_map(|m| m.keys().cloned()).collect();
    names.sort();
    names.dedup();
    names.retain(|t| drift.values().any(|m| m.contains_key(t)));
    let traits = trait_sorted(&names);
    let mut base_seen = BTreeSet::new();
    let mut out = Vec::new();
    for (k, b) in behaviour {
        let Some(&pc) = signed.get(k) else {
            continue;
        };
        let complete = drift
            .get(k)
            .is_some_and(|d| traits.iter().all(|t| d.contains_key(t)))
            && traits.iter().all(|t| b.contains_key(t));
        if complete && (k.3 > 0 || base_seen.insert(k.0.as_str())) {
            out.push((k, pc));
        }
    }
    (traits, out)
}

/// Mean |rho| on the diagonal over mean |rho| off it (None without both).
pub fn diagonal_ratio(m: &[Vec<Option<f64>>]) -> Option<f64> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for (i, row) in m.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            if let Some(v) = v {
                if i == j { &mut on } else { &mut off }.push(v.abs());
            }
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let (a, b) = (mean(&on)?, mean(&off)?);
    (b > 0.0).then(|| a / b)
}

impl Fig10 {
    fn panel<DB: DrawingBackend>(
        &self,
        m: &[Vec<Option<f64>>],
        caption: &str,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        ty: &style::Type,
    ) -> Result<()> {
        let k = self.traits.len();
        let ratio = diagonal_ratio(m).map_or("–".into(), |r| format!("{r:.2}"));
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{caption}; diagonal / off-diagonal |ρ| = {ratio}"),
                (FONT, ty.cell),
            )
            .margin(ty.px(20))
            .x_label_area_size(ty.px(230))
            .y_label_area_size(ty.px(200))
            .build_cartesian_2d(0.0..k as f64, 0.0..k as f64)
            .map_err(plot)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("behaviour: share of items at the positive pole (–: no variation)")
            .y_desc("drift along the trait direction")
            .axis_desc_style((FONT, ty.axis))
            .draw()
            .map_err(plot)?;
        // Names wider than their cells are turned (see `axis_names::columns`).
        let names = || self.traits.iter().map(|t| t.replace('_', " "));
        axis_names::columns(&mut chart, names(), 0.0, ty.tick)?;
        axis_names::rows(&mut chart, names(), k, ty.tick)?;
        for (i, row) in m.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let fill = v.map_or(RGBColor(230, 230, 230), diverging);
                let (x, y) = (j as f64, (k - 1 - i) as f64);
                let mut cell = Rectangle::new([(x, y), (x + 1.0, y + 1.0)], fill.filled());
                cell.set_margin(2, 2, 2, 2);
                let text = v.map_or_else(|| "–".to_string(), |v| format!("{v:+.2}"));
                let style = (FONT, ty.cell)
                    .into_font()
                    .color(&text_on(fill))
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series([cell]).map_err(plot)?;
                chart
                    .draw_series([Text::new(text, (x + 0.5, y + 0.5), style)])
                    .map_err(plot)?;
            }
        }
        // The diagonal (a trait's drift against its own behaviour), over the cells.
        chart
            .draw_series((0..k).map(|i| {
                let (x, y) = (i as f64, (k - 1 - i) as f64);
                Rectangle::new([(x, y), (x + 1.0, y + 1.0)], BLACK.stroke_width(ty.px(3)))
            }))
            .map_err(plot)?;
        Ok(())
    }
}

impl Figure for Fig10 {
    /// No defined correlation: a grid of dashes.
    fn fallback(&self) -> Option<style::Fallback> {
        if !crate::degenerate::all_undefined(self.raw.iter().flatten()) {
            return None;
        }
        let mut rows = Vec::new();
        for (i, d) in self.traits.iter().enumerate() {
            for (j, b) in self.traits.iter().enumerate() {
                let at = |m: &Vec<Vec<Option<f64>>>| {
                    crate::degenerate::cell(m.get(i).and_then(|r| r.get(j)).copied().flatten())
                };
                rows.push(vec![d.clone(), b.clone(), at(&self.raw), at(&self.partial)]);
            }
        }
        Some(crate::degenerate::note(
            "fig10",
            "trait drift vs trait behaviour (Spearman rho)",
            "no Spearman correlation is defined (every drift or behaviour score is constant)",
            &["drift trait", "behaviour trait", "rho raw", "rho, PC1 out"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let mut title = format!(
            "Trait drift vs trait behaviour: Spearman ρ over {} checkpoints",
            self.checkpoints
        );
        // Scores that never vary give no rho (–); say so, as the ratios leave them out.
        let k = self.traits.len();
        let flat = (0..k)
            .filter(|&j| {
                self.raw
                    .iter()
                    .all(|row| row.get(j).is_none_or(Option::is_none))
            })
            .count();
        if flat > 0 {
            title += &format!("; {flat} of {k} behaviour scores never vary (–)");
        }
        let ty = style::Type::of(root);
        let (body, _) = style::frame(root, &title, ty.px(10))?;
        let (w, _) = body.dim_in_pixel();
        let (plots, bar) = body.split_horizontally(w.saturating_sub(ty.px(200)));
        // One above the other: side by side, the trait names do not fit under the cells.
        let halves = plots.split_evenly((2, 1));
        self.panel(&self.raw, "raw", &halves[0], &ty)?;
        self.panel(&self.partial, "signed PC1 regressed out", &halves[1], &ty)?;
        style::colour_bar(&bar, -1.0, 1.0, "Spearman ρ", &ty, |t| {
            diverging(2.0 * t - 1.0)
        })
    }
}
