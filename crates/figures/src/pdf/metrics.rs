//! Glyph widths of the PDF base fonts the PDF backend uses, so that plotters lays out
//! text (legend widths, label areas, anchors) for the font a PDF viewer will show. The
//! base fonts are never embedded: every conforming viewer has Helvetica and Symbol.
//!
//! Widths are in 1/1000 em, from the fonts' published metrics (AFM), for WinAnsi codes
//! 32..=126; the few characters above 126 that figures use are listed separately.

/// Helvetica, WinAnsi 32..=126.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p..~
];

/// Helvetica-Bold, WinAnsi 32..=126.
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0..?
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // P.._
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // `..o
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, // p..~
];

/// Which base font draws a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// Helvetica (or Helvetica-Bold) in WinAnsiEncoding.
    Latin,
    /// Symbol, in its built-in encoding: the Greek letters and maths signs.
    Symbol,
}

/// A character as (face, byte code, width in 1/1000 em). Characters neither font has are
/// drawn as `?` rather than dropped, so a missing glyph shows.
pub fn glyph(c: char, bold: bool) -> (Face, u8, u16) {
    let table = if bold { &HELVETICA_BOLD } else { &HELVETICA };
    if (' '..='~').contains(&c) {
        let code = c as u8;
        return (Face::Latin, code, table[usize::from(code - 32)]);
    }
    // WinAnsi above 126: the signs figure labels use (en dash for "no value", ±, ×).
    let latin = match c {
        '–' => Some((0x96, 556)),
        '—' => Some((0x97, 1000)),
        '•' => Some((0x95, 350)),
        '±' => Some((0xB1, 584)),
        '×' => Some((0xD7, 584)),
        '°' => Some((0xB0, 400)),
        'µ' => Some((0xB5, 556)),
        '·' => Some((0xB7, 278)),
        '²' => Some((0xB2, 333)),
        '\u{a0}' => Some((0xA0, 278)),
        _ => None,
    };
    if let Some((code, w)) = latin {
        return (Face::Latin, code, w);
    }
    let symbol = match c {
        'α' => Some((0x61, 631)),
        'β' => Some((0x62, 549)),
        'δ' => Some((0x64, 494)),
        'Δ' => Some((0x44, 612)),
        'ε' => Some((0x65, 439)),
        'λ' => Some((0x6C, 549)),
        'μ' => Some((0x6D, 576)),
        'π' => Some((0x70, 549)),
        'ρ' => Some((0x72, 549)),
        'σ' => Some((0x73, 603)),
        'τ' => Some((0x74, 439)),
        '≤' => Some((0xA3, 549)),
        '≥' => Some((0xB3, 549)),
        '≈' => Some((0xBB, 549)),
        '→' => Some((0xAE, 987)),
        _ => None,
    };
    match symbol {
        Some((code, w)) => (Face::Symbol, code, w),
        None => (Face::Latin, b'?', table[usize::from(b'?' - 32)]),
    }
}

/// Advance width of `text` in 1/1000 em (no kerning: the base fonts are drawn unkerned).
pub fn width(text: &str, bold: bool) -> u32 {
    text.chars().map(|c| u32::from(glyph(c, bold).2)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_published_metrics() {
        // Spot checks against Helvetica's AFM: digits are 556, 'i' 222, 'W' 944.
        assert_eq!(width("0123456789", false), 5560);
        assert_eq!(glyph('i', false).2, 222);
        assert_eq!(glyph('W', false).2, 944);
        assert_eq!(glyph('~', false).2, 584);
        assert_eq!(glyph('m', true).2, 889);
        assert_eq!(glyph('ρ', false).0, Face::Symbol);
        assert_eq!(glyph('漢', false).1, b'?');
    }
}
