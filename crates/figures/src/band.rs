//! The mean ± 1 sd band over seeds that fig1, fig9 and fig11 draw under their lines.

use crate::Result;
use crate::style::plot;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// (x, mean, sd, seeds) per step, as `fig1::across_seeds` gives.
pub type Stats = [(f64, f64, f64, usize)];

/// Fill between mean - sd and mean + sd, clamped to `[lo, hi]`, in `colour` at `alpha`.
pub fn draw<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    stats: &Stats,
    colour: RGBColor,
    alpha: f64,
    (lo, hi): (f64, f64),
) -> Result<()> {
    let upper = stats.iter().map(|&(x, m, sd, _)| (x, (m + sd).min(hi)));
    let lower = stats
        .iter()
        .rev()
        .map(|&(x, m, sd, _)| (x, (m - sd).max(lo)));
    chart
        .draw_series(std::iter::once(Polygon::new(
            upper.chain(lower).collect::<Vec<_>>(),
            colour.mix(alpha).filled(),
        )))
        .map_err(plot)?;
    Ok(())
}
