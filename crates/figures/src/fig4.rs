//! Fig. 4: what the cluster PC1 is made of. Per model, PC1's signed loading on each trait
//! (bars, positive right) and the scree of the first three components (% of the variance
//! of the calibration runs' final drift).

use crate::load::PcaRow;
use crate::style::{FONT, Figure, plot};
use crate::{FigureError, Result};
use plotters::prelude::*;

const POSITIVE: RGBColor = RGBColor(214, 39, 40);
const NEGATIVE: RGBColor = RGBColor(31, 119, 180);

/// One model: its name, PC1's loading per trait (table order), % explained by PC1..PC3.
type Panel = (String, Vec<(String, f64)>, Vec<f64>);

#[derive(Debug)]
pub struct Fig4 {
    panels: Vec<Panel>,
}

impl Fig4 {
    pub fn new(tables: Vec<(String, Vec<PcaRow>)>) -> Result<Self> {
        let mut panels = Vec::new();
        for (model, rows) in tables {
            let loadings: Vec<(String, f64)> = rows
                .iter()
                .filter(|r| r.component == 1)
                .map(|r| (r.feature.clone(), r.loading))
                .collect();
            let mut scree: Vec<(u32, f64)> = rows
                .iter()
                .map(|r| (r.component, 100.0 * r.explained_variance_ratio))
                .collect();
            scree.sort_by_key(|s| s.0);
            scree.dedup_by_key(|s| s.0);
            let scree: Vec<f64> = scree.into_iter().take(3).map(|s| s.1).collect();
            if !loadings.is_empty() {
                panels.push((model, loadings, scree));
            }
        }
        if panels.is_empty() {
            return Err(FigureError::Missing(
                "fig4 needs PC1 loadings in a `pca` table (from `traitwatch pca`)".into(),
            ));
        }
        Ok(Self { panels })
    }

    pub fn rows(&self) -> usize {
        self.panels.len().max(2)
    }
}

impl Figure for Fig4 {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "What cluster PC1 is made of: trait loadings and explained variance";
        let area = root.margin(16, 0, 0, 0);
        let area = area.titled(title, (FONT, 36)).map_err(plot)?;
        let rows = area.split_evenly((self.panels.len(), 1));
        for ((model, loadings, scree), row) in self.panels.iter().zip(&rows) {
            let (left, right) = row.split_horizontally((62).percent_width());
            draw_loadings(model, loadings, &left)?;
            draw_scree(model, scree, &right)?;
        }
        Ok(())
    }
}

fn draw_loadings<DB: DrawingBackend>(
    model: &str,
    loadings: &[(String, f64)],
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()> {
    let n = loadings.len();
    let lim = loadings.iter().map(|l| l.1.abs()).fold(0.1f64, f64::max) * 1.15;
    let names: Vec<String> = loadings.iter().map(|l| l.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{model}: PC1 loadings"), (FONT, 28))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(190)
        .build_cartesian_2d(-lim..lim, (0..n - 1).into_segmented())
        .map_err(plot)?;
    chart
        .configure_mesh()
        .x_desc("loading on PC1 (sign fixed so harmlessness is positive)")
        .label_style((FONT, 22))
        .axis_desc_style((FONT, 22))
        .y_label_formatter(&|v| match v {
            // Table order from the top.
            SegmentValue::CenterOf(i) => names.get(n - 1 - *i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .disable_y_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|v| format!("{:.1}", if v.abs() < 1e-9 { 0.0 } else { *v }))
        .draw()
        .map_err(plot)?;
    chart
        .draw_series(loadings.iter().enumerate().map(|(k, (_, v))| {
            let i = n - 1 - k;
            let c = if *v >= 0.0 { POSITIVE } else { NEGATIVE };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                c.mix(0.85).filled(),
            );
            bar.set_margin(8, 8, 0, 0);
            bar
        }))
        .map_err(plot)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(n))],
            BLACK.stroke_width(2),
        )))
        .map_err(plot)?;
    Ok(())
}

fn draw_scree<DB: DrawingBackend>(
    model: &str,
    scree: &[f64],
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()> {
    let k = scree.len();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{model}: scree"), (FONT, 28))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d((1..k as u32).into_segmented(), 0.0..105.0)
        .map_err(plot)?;
    chart
        .configure_mesh()
        .x_desc("component")
        .y_desc("variance explained (%)")
        .label_style((FONT, 22))
        .axis_desc_style((FONT, 22))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(c) => format!("PC{c}"),
            _ => String::new(),
        })
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot)?;
    chart
        .draw_series(scree.iter().enumerate().map(|(i, &v)| {
            let c = i as u32 + 1;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(c), 0.0),
                    (SegmentValue::Exact(c + 1), v),
                ],
                RGBColor(90, 90, 90).mix(0.8).filled(),
            );
            bar.set_margin(0, 0, 20, 20);
            bar
        }))
        .map_err(plot)?;
    chart
        .draw_series(scree.iter().enumerate().map(|(i, &v)| {
            Text::new(
                format!("{v:.1}%"),
                (SegmentValue::CenterOf(i as u32 + 1), v + 4.0),
                (FONT, 22).into_font(),
            )
        }))
        .map_err(plot)?;
    Ok(())
}
