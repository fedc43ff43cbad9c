//! Fig. 5: two runs with matched |PC1| but different EM, and their per-trait drift. The
//! scalar |PC1| cannot tell them apart; if their trait profiles differ, the 7-D monitor
//! can. Per model, among each run's final labelled checkpoint, the pair whose |PC1| agree
//! within 10% and whose EM differs most (if no pair agrees that well, the closest pair,
//! and the panel says so). Only runs with the same kind of EM label are paired.
//!
//! Reads `pc1` (`traitwatch pca`), `drift` (`traitwatch drift`, the alignment feature set)
//! and `em_summary`/`em_label` (`traitwatch em`) tables.

use crate::em_data::{self, EmKind, EmRow};
use crate::load::{Context, Pc1Row};
use crate::style::{FONT, Figure, Mark, colour, plot, trait_sorted};
use crate::trait_data::{PerTrait, trait_drift};
use crate::{Result, load, style};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// |PC1| within this relative difference counts as matched.
const MATCH: f64 = 0.10;

#[derive(Debug, Clone)]
pub struct Pick {
    pub perturbation: String,
    pub seed: u64,
    pub step: u64,
    pub abs_pc1: f64,
    pub em: f64,
    /// A pair is only formed from runs labelled the same way.
    pub kind: EmKind,
    pub drift: BTreeMap<String, f64>,
}

#[derive(Debug)]
pub struct Panel {
    pub model: String,
    pub pair: [Pick; 2],
    /// |PC1| relative difference of the pair.
    pub gap: f64,
}

#[derive(Debug)]
pub struct Fig5 {
    pub panels: Vec<Panel>,
    traits: Vec<String>,
    /// For the title: the label's name when every panel's pair has the same kind, else
    /// `EM`.
    em_name: &'static str,
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let pc1_files = ctx.require("pc1")?;
    let drift_files = ctx.require("drift")?;
    let (em, em_files) = em_data::em_rows(ctx)?;
    if em.is_empty() {
        return Err(ctx.no_data(
            "no `em_summary` or `em_label` table holds an overall EM label (run `traitwatch em`)",
        ));
    }
    let pc1 = load::pc1_rows(&pc1_files)?;
    let drift = trait_drift(&drift_files, "alignment")?;
    let fig = Fig5::new(&pc1, &em, &drift).ok_or_else(|| {
        ctx.no_data(
            "no model has two runs whose final labelled checkpoint has |PC1|, EM and \
             alignment drift (run `traitwatch pca`, `traitwatch em` and `traitwatch drift` \
             on at least two runs)",
        )
    })?;
    let h = 220 + 720 * fig.panels.len() as u32;
    let written = style::render_target(ctx, out, (style::WIDTH, h), &fig)?;
    let mut inputs = pc1_files;
    inputs.extend(drift_files);
    inputs.extend(em_files);
    Ok((written, inputs))
}

impl Fig5 {
    pub fn new(pc1: &[Pc1Row], em: &[EmRow], drift: &PerTrait) -> Option<Self> {
        let pc1_at: BTreeMap<(&str, &str, u64, u64), f64> = pc1
            .iter()
            .map(|r| {
                let key = (r.model.as_str(), r.perturbation.as_str(), r.seed, r.step);
                (key, r.abs_pc1)
            })
            .collect();
        // Each run's last checkpoint (after step 0) that has all three numbers.
        let mut last: BTreeMap<(&str, &str, u64), Pick> = BTreeMap::new();
        for r in em.iter().filter(|r| r.step > 0) {
            let key = (r.model.as_str(), r.perturbation.as_str(), r.seed, r.step);
            let Some(&abs_pc1) = pc1_at.get(&key) else {
                continue;
            };
            let dkey = (r.model.clone(), r.perturbation.clone(), r.seed, r.step);
            let Some(d) = drift.get(&dkey).filter(|d| !d.is_empty()) else {
                continue;
            };
            let pick = Pick {
                perturbation: r.perturbation.clone(),
                seed: r.seed,
                step: r.step,
                abs_pc1,
                em: r.value,
                kind: r.kind,
                drift: d.clone(),
            };
            let slot = last.entry(r.run()).or_insert_with(|| pick.clone());
            if pick.step > slot.step {
                *slot = pick;
            }
        }
        let mut by_model: BTreeMap<&str, Vec<Pick>> = BTreeMap::new();
        for ((model, _, _), pick) in last {
            by_model.entry(model).or_default().push(pick);
        }
        let mut panels = Vec::new();
        for (model, picks) in by_model {
            if let Some((a, b, gap)) = best_pair(&picks) {
                // The higher-EM run first.
                let pair = if a.em >= b.em { [a, b] } else { [b, a] };
                panels.push(Panel {
                    model: model.to_string(),
                    pair,
                    gap,
                });
            }
        }
        let mut traits: Vec<String> = panels
            .iter()
            .flat_map(|p| p.pair.iter().flat_map(|k| k.drift.keys().cloned()))
            .collect();
        traits.sort();
        traits.dedup();
        let kinds: std::collections::BTreeSet<EmKind> =
            panels.iter().map(|p| p.pair[0].kind).collect();
        let em_name = match kinds.into_iter().collect::<Vec<_>>()[..] {
            [kind] => em_name(kind),
            _ => "EM",
        };
        (!panels.is_empty()).then(|| Self {
            panels,
            traits: trait_sorted(&traits),
            em_name,
        })
    }
}

/// The matched pair with the largest EM difference, else the closest |PC1| pair; only
/// runs with the same kind of EM label are compared.
fn best_pair(picks: &[Pick]) -> Option<(Pick, Pick, f64)> {
    let mut best: Option<(usize, usize, f64, bool)> = None;
    for i in 0..picks.len() {
        for j in i + 1..picks.len() {
            let (a, b) = (&picks[i], &picks[j]);
            if a.kind != b.kind {
                continue;
            }
            let gap = (a.abs_pc1 - b.abs_pc1).abs() / a.abs_pc1.max(b.abs_pc1).max(1e-12);
            let matched = gap <= MATCH;
            let better = match best {
                None => true,
                Some((bi, bj, bgap, bmatched)) => {
                    let de = (a.em - b.em).abs();
                    let bde = (picks[bi].em - picks[bj].em).abs();
                    match (matched, bmatched) {
                        (true, false) => true,
                        (false, true) => false,
                        (true, true) => de > bde || (de == bde && gap < bgap),
                        (false, false) => gap < bgap,
                    }
                }
            };
            if better {
                best = Some((i, j, gap, matched));
            }
        }
    }
    best.map(|(i, j, gap, _)| (picks[i].clone(), picks[j].clone(), gap))
}

/// A lighter shade, for a second run of the same perturbation.
fn lighter(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + 0.5 * (255.0 - f64::from(v))).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

impl Panel {
    fn colours(&self) -> [RGBColor; 2] {
        let [a, b] = &self.pair;
        let ca = colour(&a.perturbation);
        let cb = colour(&b.perturbation);
        [ca, if ca == cb { lighter(cb) } else { cb }]
    }

    fn caption(&self, em_name: &str) -> String {
        let de = 100.0 * (self.pair[0].em - self.pair[1].em).abs();
        if self.gap <= MATCH {
            format!(
                "{}: |PC1| within {:.0}%, {em_name} {de:.1} points apart",
                self.model,
                100.0 * self.gap
            )
        } else {
            format!(
                "{}: no pair within {:.0}%; the closest |PC1| ({:.0}% apart), {em_name} {de:.1} points apart",
                self.model,
                100.0 * MATCH,
                100.0 * self.gap
            )
        }
    }
}

/// A short name of the label, for captions.
fn em_name(kind: EmKind) -> &'static str {
    match kind {
        EmKind::FreeForm => "EM",
        EmKind::LogOdds => "EM label",
        EmKind::Proxy => "proxy EM",
    }
}

fn describe(p: &Pick) -> String {
    let em = match p.kind {
        EmKind::LogOdds => format!("{:+.0}% of the controls' shift", 100.0 * p.em),
        _ => format!("{:.1}%", 100.0 * p.em),
    };
    format!(
        "{} seed {}, step {}: |PC1| × 100 = {:.2}, {} {em}",
        p.perturbation,
        p.seed,
        p.step,
        100.0 * p.abs_pc1,
        em_name(p.kind),
    )
}

impl Fig5 {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        panel: &Panel,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        ty: &style::Type,
    ) -> Result<()> {
        let k = self.traits.len();
        let values = |p: &Pick| -> Vec<f64> {
            self.traits
                .iter()
                .map(|t| 100.0 * p.drift.get(t).copied().unwrap_or(0.0))
                .collect()
        };
        let (va, vb) = (values(&panel.pair[0]), values(&panel.pair[1]));
        let lo = va.iter().chain(&vb).fold(0.0f64, |m, v| m.min(*v));
        let hi = va.iter().chain(&vb).fold(0.0f64, |m, v| m.max(*v));
        let pad = 0.12 * (hi - lo).max(1e-6);
        let (chart_area, legend) =
            area.split_vertically(area.dim_in_pixel().1.saturating_sub(ty.px(90)));
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(
                panel.caption(em_name(panel.pair[0].kind)),
                (FONT, ty.caption),
            )
            .margin(ty.px(20))
            .x_label_area_size(ty.px(60))
            .y_label_area_size(ty.px(110))
            .build_cartesian_2d(0.0..k.max(1) as f64, (lo - pad)..(hi + pad))
            .map_err(plot)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("trait drift × 100 (% of act. norm)")
            .axis_desc_style((FONT, ty.axis))
            .label_style((FONT, ty.tick))
            .light_line_style(WHITE)
            .y_label_formatter(&|v| format!("{:.2}", if v.abs() < 5e-7 { 0.0 } else { *v }))
            .draw()
            .map_err(plot)?;
        let names = self.traits.iter().map(|t| t.replace('_', " "));
        crate::axis_names::columns(&mut chart, names, lo - pad, ty.tick)?;
        chart
            .draw_series([PathElement::new(
                vec![(0.0, 0.0), (k as f64, 0.0)],
                BLACK.stroke_width(ty.px(2)),
            )])
            .map_err(plot)?;
        let colours = panel.colours();
        for (side, (vals, c)) in [(&va, colours[0]), (&vb, colours[1])].iter().enumerate() {
            let off = if side == 0 { 0.14 } else { 0.52 };
            chart
                .draw_series(vals.iter().enumerate().map(|(i, v)| {
                    let x = i as f64 + off;
                    Rectangle::new([(x, 0.0), (x + 0.34, *v)], c.filled())
                }))
                .map_err(plot)?;
        }
        let entries = vec![
            (Mark::Square(colours[0]), describe(&panel.pair[0])),
            (Mark::Square(colours[1]), describe(&panel.pair[1])),
        ];
        style::legend_strip(&legend, &entries, ty)
    }
}

impl Figure for Fig5 {
    /// Neither run of any pair has a finite per-trait drift: empty bars.
    fn fallback(&self) -> Option<style::Fallback> {
        let values = self
            .panels
            .iter()
            .flat_map(|p| p.pair.iter().flat_map(|q| q.drift.values()));
        if values.clone().any(|v| v.is_finite()) {
            return None;
        }
        let mut rows = Vec::new();
        for p in &self.panels {
            for q in &p.pair {
                for (t, v) in &q.drift {
                    rows.push(vec![
                        p.model.clone(),
                        q.perturbation.clone(),
                        q.seed.to_string(),
                        t.clone(),
                        crate::degenerate::cell(Some(*v)),
                    ]);
                }
            }
        }
        Some(crate::degenerate::note(
            "fig5",
            "per-trait drift of a matched-|PC1| pair",
            "no per-trait drift of the paired runs is finite; rerun `traitwatch drift`",
            &["model", "perturbation", "seed", "trait", "drift"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = format!(
            "Matched |PC1|, different {}: the per-trait drift of the two runs",
            self.em_name
        );
        let ty = style::Type::of(root);
        let (body, _) = style::frame(root, &title, ty.px(10))?;
        let areas = body.split_evenly((self.panels.len(), 1));
        for (panel, area) in self.panels.iter().zip(&areas) {
            self.draw_panel(panel, area, &ty)?;
        }
        Ok(())
    }
}
