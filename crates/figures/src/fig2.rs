//! Fig. 2: where every run ends. The final checkpoint of each (perturbation, seed) run:
//! drift magnitude (x100, % of the pre-finetuning activation norm) against its cosine to
//! the cluster PC1. Each marker's ring has the perturbation's colour and its fill the EM
//! label at that checkpoint (colour bar; hollow, or grey on a signed label's map, where the
//! checkpoint has no EM label). One panel per model.
//!
//! Reads `pc1` tables (required) and `em_summary`/`em_label` tables (optional; see
//! `em_data`). A rate is coloured on a sequential map; a signed label (the log-odds shift
//! as a fraction of the controls') on a diverging one, white at "no change since step 0".

use crate::em_data::{self, EmRow};
use crate::load::{Context, Pc1Row};
use crate::style::{FONT, Figure, Mark, colour, diverging, plot, sequential};
use crate::{Result, load, style};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One run's final checkpoint.
#[derive(Debug, Clone)]
struct Point {
    perturbation: String,
    drift: f64,
    cosine: f64,
    /// The EM label in %.
    em: Option<f64>,
}

#[derive(Debug)]
pub struct Fig2 {
    /// (model, points).
    panels: Vec<(String, Vec<Point>)>,
    perturbations: Vec<String>,
    em_label: String,
    em_range: (f64, f64),
    /// A signed label: a diverging map centred on 0.
    signed: bool,
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let pc1_files = ctx.require("pc1")?;
    let (em, em_files) = em_data::em_rows(ctx)?;
    let pc1 = load::pc1_rows(&pc1_files)?;
    let fig = Fig2::new(&pc1, &em).ok_or_else(|| ctx.no_data("the `pc1` tables have no rows"))?;
    let (w, h) = style::canvas(fig.panels.len());
    let files = style::render_target(ctx, out, (w + 200, h), &fig)?;
    Ok((files, [pc1_files, em_files].concat()))
}

impl Fig2 {
    pub fn new(pc1: &[Pc1Row], em: &[EmRow]) -> Option<Self> {
        let mut last: BTreeMap<(&str, &str, u64), &Pc1Row> = BTreeMap::new();
        for r in pc1 {
            let e = last.entry((&r.model, &r.perturbation, r.seed)).or_insert(r);
            if r.step > e.step {
                *e = r;
            }
        }
        let em_at: BTreeMap<(&str, &str, u64, u64), f64> = em
            .iter()
            .map(|r| {
                (
                    (r.model.as_str(), r.perturbation.as_str(), r.seed, r.step),
                    r.value,
                )
            })
            .collect();
        let mut panels: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        let mut perturbations = Vec::new();
        for ((model, pert, seed), r) in last {
            perturbations.push(pert.to_string());
            panels.entry(model.to_string()).or_default().push(Point {
                perturbation: pert.to_string(),
                drift: 100.0 * r.drift_norm,
                cosine: r.cosine_to_pc1,
                em: em_at.get(&(model, pert, seed, r.step)).map(|v| 100.0 * v),
            });
        }
        if panels.is_empty() {
            return None;
        }
        style::perturbation_order(&mut perturbations);
        let ems: Vec<f64> = panels.values().flatten().filter_map(|p| p.em).collect();
        let lo = ems.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ems.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let signed = !em_data::axis_bounds(em).0.is_finite();
        // At least 5 points of EM across the bar, so label noise is not stretched to full colour.
        let em_range = if ems.is_empty() {
            (0.0, 100.0)
        } else if signed {
            let m = lo.abs().max(hi.abs()).max(2.5);
            (-m, m)
        } else {
            let mid = (lo + hi) / 2.0;
            let half = ((hi - lo) / 2.0).max(2.5);
            ((mid - half).max(0.0), (mid + half).min(100.0))
        };
        Some(Self {
            panels: panels.into_iter().collect(),
            perturbations,
            em_label: em_data::axis_label(em),
            em_range,
            signed,
        })
    }

    /// The colour of `t` in 0..1 along the bar.
    fn map(&self, t: f64) -> RGBColor {
        if self.signed {
            diverging(2.0 * t - 1.0)
        } else {
            sequential(t)
        }
    }

    /// The fill of a checkpoint without a label: white on the sequential map, grey on the
    /// diverging one (where white means "no change").
    fn unlabelled(&self) -> RGBColor {
        if self.signed {
            RGBColor(150, 150, 150)
        } else {
            WHITE
        }
    }

    fn fill(&self, em: f64) -> RGBColor {
        let (lo, hi) = self.em_range;
        self.map((em - lo) / (hi - lo).max(1e-9))
    }
}

impl Figure for Fig2 {
    /// No final checkpoint with a finite drift and cosine: an empty scatter.
    fn fallback(&self) -> Option<style::Fallback> {
        let points = self
            .panels
            .iter()
            .flat_map(|(m, p)| p.iter().map(move |p| (m, p)));
        if points
            .clone()
            .any(|(_, p)| p.drift.is_finite() && p.cosine.is_finite())
        {
            return None;
        }
        let cell = |v: f64| crate::degenerate::cell(Some(v));
        let rows = points
            .map(|(m, p)| {
                vec![
                    m.clone(),
                    p.perturbation.clone(),
                    cell(p.drift),
                    cell(p.cosine),
                    crate::degenerate::cell(p.em),
                ]
            })
            .collect();
        Some(crate::degenerate::note(
            "fig2",
            "final drift magnitude vs cosine to PC1",
            "no final checkpoint has a finite drift magnitude and cosine to PC1",
            &[
                "model",
                "perturbation",
                "drift x100",
                "cosine to PC1",
                "EM %",
            ],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title =
            "Final checkpoints: drift magnitude vs alignment with the cluster PC1, coloured by EM";
        let ty = style::Type::of(root);
        let body = style::frame_with_legend(root, title, &self.legend())?;
        let (w, _) = body.dim_in_pixel();
        let (plots, bar) = body.split_horizontally(w.saturating_sub(ty.px(230)));
        let areas = plots.split_evenly(style::grid(self.panels.len()));
        for ((model, points), area) in self.panels.iter().zip(&areas) {
            self.draw_panel(model, points, area, &ty)?;
        }
        let (lo, hi) = self.em_range;
        style::colour_bar(&bar, lo, hi, &self.em_label, &ty, |t| self.map(t))
    }
}

impl Fig2 {
    fn legend(&self) -> Vec<(Mark, String)> {
        let mut entries: Vec<(Mark, String)> = self
            .perturbations
            .iter()
            .map(|p| {
                let mark = if p.contains('+') {
                    Mark::HollowSquare(colour(p))
                } else {
                    Mark::Hollow(colour(p))
                };
                (mark, p.clone())
            })
            .collect();
        if self
            .panels
            .iter()
            .any(|(_, p)| p.iter().any(|p| p.em.is_none()))
        {
            let entry = if self.signed {
                (Mark::Dot(self.unlabelled()), "grey fill: no EM label")
            } else {
                (
                    Mark::Hollow(RGBColor(150, 150, 150)),
                    "white fill: no EM label",
                )
            };
            entries.push((entry.0, entry.1.into()));
        }
        entries
    }
}

impl Fig2 {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        model: &str,
        points: &[Point],
        area: &DrawingArea<DB, plotters::coord::Shift>,
        ty: &style::Type,
    ) -> Result<()> {
        let x_max = points.iter().map(|p| p.drift).fold(0.0f64, f64::max);
        let c_lo = points.iter().map(|p| p.cosine).fold(1.0f64, f64::min);
        let c_hi = points.iter().map(|p| p.cosine).fold(-1.0f64, f64::max);
        let span = (c_hi - c_lo).max(0.1);
        // Cosines lie in [-1, 1]; the margin keeps markers at the ends off the frame.
        let y_range = (c_lo - 0.12 * span).max(-1.08)..(c_hi + 0.12 * span).min(1.08);
        let mut chart = ChartBuilder::on(area)
            .caption(model, (FONT, ty.caption))
            .margin(ty.px(20))
            .margin_right(ty.px(40))
            .x_label_area_size(ty.px(80))
            .y_label_area_size(ty.px(110))
            .build_cartesian_2d(0.0..(x_max * 1.12).max(1e-6), y_range)
            .map_err(plot)?;
        chart
            .configure_mesh()
            .x_desc("final drift ||x|| × 100 (% of activation norm)")
            .y_desc("cosine of the drift to PC1")
            .label_style((FONT, ty.tick))
            .axis_desc_style((FONT, ty.axis))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(228, 228, 228))
            .x_label_formatter(&|v| style::tick(*v, x_max))
            .y_label_formatter(&|v| {
                if v.abs() < 1e-9 {
                    "0.0".to_string()
                } else if v.abs() <= 1.0 + 1e-9 {
                    format!("{v:.1}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(plot)?;
        // Unlabelled first, so labelled markers lie on top.
        let mut order: Vec<&Point> = points.iter().collect();
        order.sort_by_key(|p| p.em.is_some());
        chart
            .draw_series(
                order
                    .iter()
                    .filter(|p| !p.perturbation.contains('+'))
                    .map(|p| {
                        let fill = p.em.map_or(self.unlabelled(), |e| self.fill(e));
                        EmptyElement::at((p.drift, p.cosine))
                            + Circle::new((0, 0), 13, fill.filled())
                            + Circle::new(
                                (0, 0),
                                13,
                                colour(&p.perturbation).stroke_width(ty.px(4)),
                            )
                    }),
            )
            .map_err(plot)?;
        // Extra runs (`bad_medical+full`) as squares in their perturbation's colour.
        chart
            .draw_series(
                order
                    .iter()
                    .filter(|p| p.perturbation.contains('+'))
                    .map(|p| {
                        let fill = p.em.map_or(self.unlabelled(), |e| self.fill(e));
                        EmptyElement::at((p.drift, p.cosine))
                            + Rectangle::new(
                                [(-ty.dx(12), -ty.dx(12)), (ty.dx(12), ty.dx(12))],
                                fill.filled(),
                            )
                            + Rectangle::new(
                                [(-ty.dx(12), -ty.dx(12)), (ty.dx(12), ty.dx(12))],
                                colour(&p.perturbation).stroke_width(ty.px(4)),
                            )
                    }),
            )
            .map_err(plot)?;
        Ok(())
    }
}
