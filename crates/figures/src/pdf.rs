//! A plotters drawing backend that writes a one-page vector PDF, so figures can go into a
//! paper at any size without resampling. plotters ships no PDF backend, and the PDF
//! crates are far heavier to build than the few operators a figure needs.
//!
//! The page is the figure's print size ([`crate::style::type_size::print_width_in`]); a
//! `cm` operator maps plotters' pixel coordinates (y down) onto it, so every drawing call
//! writes pixel coordinates. Text uses the base fonts Helvetica, Helvetica-Bold and
//! Symbol, which viewers supply (nothing embedded), laid out with their widths
//! ([`metrics`]). Transparency (bands drawn with `mix`) uses one ExtGState per alpha.

pub mod metrics;

use metrics::Face;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::{FontStyle, FontTransform};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// plotters' font size is the line height; the em is smaller by this factor (the SVG
/// backend divides by it too, so text in the PDF matches the SVG's).
pub const SIZE_PER_EM: f64 = 1.24;

type Res = std::result::Result<(), DrawingErrorKind<std::io::Error>>;

/// Draws into a PDF written to `target` when presented (or dropped).
#[derive(Debug)]
pub struct PdfBackend<'a> {
    target: &'a mut Vec<u8>,
    size: (u32, u32),
    /// Page size in points.
    page: (f64, f64),
    ops: String,
    /// Alphas in 1/100, each an ExtGState `/GA<n>`.
    alphas: BTreeSet<u8>,
    saved: bool,
}

impl<'a> PdfBackend<'a> {
    /// A page `width_pt` wide showing a `size` px drawing (height in proportion).
    pub fn new(target: &'a mut Vec<u8>, size: (u32, u32), width_pt: f64) -> Self {
        let scale = width_pt / f64::from(size.0.max(1));
        let page = (width_pt, scale * f64::from(size.1));
        let mut ops = String::new();
        // Pixel space: x right, y down, 1 unit = 1 px; round joins read well on curves.
        let _ = writeln!(
            ops,
            "{} 0 0 {} 0 {} cm 1 j",
            num(scale),
            num(-scale),
            num(page.1)
        );
        Self {
            target,
            size,
            page,
            ops,
            alphas: BTreeSet::new(),
            saved: false,
        }
    }

    /// Open a graphics state with `c` as fill and stroke colour; false if `c` is invisible.
    fn begin(&mut self, c: BackendColor) -> bool {
        if c.alpha <= 0.0 {
            return false;
        }
        let (r, g, b) = c.rgb;
        let [r, g, b] = [r, g, b].map(|v| num(f64::from(v) / 255.0));
        let _ = write!(self.ops, "q {r} {g} {b} rg {r} {g} {b} RG ");
        if c.alpha < 1.0 {
            let a = (c.alpha.clamp(0.0, 1.0) * 100.0).round() as u8;
            self.alphas.insert(a);
            let _ = write!(self.ops, "/GA{a} gs ");
        }
        true
    }

    fn stroke_width(&mut self, w: u32) {
        let _ = write!(self.ops, "{} w ", w.max(1));
    }

    fn path(&mut self, points: &[BackendCoord]) {
        for (i, (x, y)) in points.iter().enumerate() {
            let op = if i == 0 { "m" } else { "l" };
            let _ = write!(self.ops, "{x} {y} {op} ");
        }
    }

    fn text_run(&mut self, text: &str, bold: bool, em: f64, matrix: [f64; 6]) {
        let latin = if bold { "/FB" } else { "/FR" };
        let [a, b, c, d, e, f] = matrix.map(num);
        let _ = write!(self.ops, "BT {a} {b} {c} {d} {e} {f} Tm ");
        let mut face = None;
        for ch in text.chars() {
            let (g, code, _) = metrics::glyph(ch, bold);
            if face != Some(g) {
                if face.is_some() {
                    self.ops.push_str(") Tj ");
                }
                let name = if g == Face::Symbol { "/FS" } else { latin };
                let _ = write!(self.ops, "{name} {} Tf (", num(em));
                face = Some(g);
            }
            match code {
                b'(' | b')' | b'\\' => {
                    self.ops.push('\\');
                    self.ops.push(char::from(code));
                }
                32..=126 => self.ops.push(char::from(code)),
                _ => {
                    let _ = write!(self.ops, "\\{code:03o}");
                }
            }
        }
        if face.is_some() {
            self.ops.push_str(") Tj ");
        }
        self.ops.push_str("ET ");
    }

    /// The whole file: catalog, page tree, page, content, three fonts, cross-reference.
    fn document(&self) -> Vec<u8> {
        let gs: String = self
            .alphas
            .iter()
            .map(|a| {
                let v = num(f64::from(*a) / 100.0);
                format!("/GA{a} << /ca {v} /CA {v} >> ")
            })
            .collect();
        let (w, h) = (num(self.page.0), num(self.page.1));
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] /Contents 4 0 R \
                 /Resources << /Font << /FR 5 0 R /FB 6 0 R /FS 7 0 R >> \
                 /ExtGState << {gs}>> >> >>"
            ),
            format!(
                "<< /Length {} >>\nstream\n{}\nendstream",
                self.ops.len() + 1,
                self.ops
            ),
            base_font("Helvetica", true),
            base_font("Helvetica-Bold", true),
            base_font("Symbol", false),
            "<< /Producer (traitwatch figures) >>".to_string(),
        ];
        // Binary comment after the header: tools treat the file as binary, not text.
        let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::with_capacity(objects.len());
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
        for o in offsets {
            // Each entry is 20 bytes: the trailing space is part of the format.
            let _ = writeln!(table, "{o:010} 00000 n ");
        }
        let _ = write!(
            table,
            "trailer\n<< /Size {} /Root 1 0 R /Info {} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1,
            objects.len()
        );
        out.extend_from_slice(table.as_bytes());
        out
    }
}

fn base_font(name: &str, win_ansi: bool) -> String {
    let enc = if win_ansi {
        " /Encoding /WinAnsiEncoding"
    } else {
        ""
    };
    format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name}{enc} >>")
}

/// A number with at most three decimals and no trailing zeros (PDF has no exponents).
fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// The text matrix's rotation part for plotters' transforms, in the y-down page space
/// (unrotated text is flipped back upright by d = -1).
fn rotation(t: &FontTransform) -> [f64; 4] {
    match t {
        FontTransform::None => [1.0, 0.0, 0.0, -1.0],
        FontTransform::Rotate90 => [0.0, 1.0, 1.0, 0.0],
        FontTransform::Rotate180 => [-1.0, 0.0, 0.0, 1.0],
        FontTransform::Rotate270 => [0.0, -1.0, -1.0, 0.0],
    }
}

impl DrawingBackend for PdfBackend<'_> {
    type ErrorType = std::io::Error;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Res {
        Ok(())
    }

    fn present(&mut self) -> Res {
        if !self.saved {
            *self.target = self.document();
            self.saved = true;
        }
        Ok(())
    }

    fn draw_pixel(&mut self, (x, y): BackendCoord, color: BackendColor) -> Res {
        if self.begin(color) {
            let _ = writeln!(self.ops, "{x} {y} 1 1 re f Q");
        }
        Ok(())
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, s: &S) -> Res {
        self.draw_path([from, to], s)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        (x0, y0): BackendCoord,
        (x1, y1): BackendCoord,
        s: &S,
        fill: bool,
    ) -> Res {
        if self.begin(s.color()) {
            let (x, y, w, h) = (x0.min(x1), y0.min(y1), (x1 - x0).abs(), (y1 - y0).abs());
            if fill {
                // The bitmap backend fills both corner pixels: one more px each way.
                let _ = writeln!(self.ops, "{x} {y} {} {} re f Q", w + 1, h + 1);
            } else {
                self.stroke_width(s.stroke_width());
                let _ = writeln!(self.ops, "{x} {y} {w} {h} re S Q");
            }
        }
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        s: &S,
    ) -> Res {
        let points: Vec<BackendCoord> = path.into_iter().collect();
        if points.len() > 1 && self.begin(s.color()) {
            self.stroke_width(s.stroke_width());
            self.path(&points);
            self.ops.push_str("S Q\n");
        }
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        (cx, cy): BackendCoord,
        radius: u32,
        s: &S,
        fill: bool,
    ) -> Res {
        if !self.begin(s.color()) {
            return Ok(());
        }
        if !fill {
            self.stroke_width(s.stroke_width());
        }
        // Four cubic Béziers; k places the control points for the closest fit to a circle.
        let (x, y, r) = (f64::from(cx), f64::from(cy), f64::from(radius));
        let k = 0.552_284_75 * r;
        let p = |a: f64, b: f64| format!("{} {}", num(a), num(b));
        let _ = write!(
            self.ops,
            "{} m {} {} {} c {} {} {} c {} {} {} c {} {} {} c ",
            p(x + r, y),
            p(x + r, y + k),
            p(x + k, y + r),
            p(x, y + r),
            p(x - k, y + r),
            p(x - r, y + k),
            p(x - r, y),
            p(x - r, y - k),
            p(x - k, y - r),
            p(x, y - r),
            p(x + k, y - r),
            p(x + r, y - k),
            p(x + r, y),
        );
        self.ops.push_str(if fill { "f Q\n" } else { "h S Q\n" });
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        s: &S,
    ) -> Res {
        let points: Vec<BackendCoord> = vert.into_iter().collect();
        if points.len() > 2 && self.begin(s.color()) {
            self.path(&points);
            self.ops.push_str("h f Q\n");
        }
        Ok(())
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Res {
        if text.is_empty() || !self.begin(style.color()) {
            return Ok(());
        }
        let bold = matches!(style.style(), FontStyle::Bold);
        let em = style.size() / SIZE_PER_EM;
        let w = f64::from(metrics::width(text, bold)) * em / 1000.0;
        // Anchor offsets in the text's own frame (x along the text, y down).
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -w / 2.0,
            HPos::Right => -w,
        };
        // Helvetica's cap height is 0.72 em and its descender 0.21 em.
        let dy = match anchor.v_pos {
            VPos::Top => 0.76 * em,
            VPos::Center => 0.36 * em,
            VPos::Bottom => -0.22 * em,
        };
        let [a, b, c, d] = rotation(&style.transform());
        // The frame's x axis is (a, b) on the page and its y-down axis (-c, -d).
        let x = f64::from(pos.0) + a * dx - c * dy;
        let y = f64::from(pos.1) + b * dx - d * dy;
        self.text_run(text, bold, em, [a, b, c, d, x, y]);
        self.ops.push_str("Q\n");
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> std::result::Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let em = style.size() / SIZE_PER_EM;
        let bold = matches!(style.style(), FontStyle::Bold);
        let w = f64::from(metrics::width(text, bold)) * em / 1000.0;
        Ok((w.ceil() as u32, em.ceil() as u32))
    }
}

impl Drop for PdfBackend<'_> {
    fn drop(&mut self) {
        // Like plotters' SVG backend: an unpresented drawing is still written out.
        let _ = self.present();
    }
}
