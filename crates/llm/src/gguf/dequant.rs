//! Dequantization of GGML block formats to f32.
//!
//! Each function takes the raw bytes of whole blocks and appends the decoded values to `out`.
//! Layouts (all little-endian, `f16` = IEEE half):
//!
//! | type | block | bytes | layout |
//! |------|-------|-------|--------|
//! | Q4_0 | 32  | 18  | d:f16, qs[16] (low nibbles = elements 0..16, high = 16..32), x = (q-8)·d |
//! | Q4_1 | 32  | 20  | d:f16, m:f16, qs[16], x = q·d + m |
//! | Q5_0 | 32  | 22  | d:f16, qh:u32 (5th bits), qs[16], x = (q-16)·d |
//! | Q5_1 | 32  | 24  | d:f16, m:f16, qh:u32, qs[16], x = q·d + m |
//! | Q8_0 | 32  | 34  | d:f16, qs:i8[32], x = q·d |
//! | Q4_K | 256 | 144 | d, dmin:f16, scales[12] (8 × 6-bit scale+min), qs[128] |
//! | Q5_K | 256 | 176 | d, dmin:f16, scales[12], qh[32], qs[128] |
//! | Q6_K | 256 | 210 | ql[128], qh[64], scales:i8[16], d:f16 |
//!
//! Q2_K and Q3_K live in [`super::dequant_k`].

use super::dequant_k::{q2_k, q3_k};
use super::types::{GgmlType, QK_K};
use half::{bf16, f16};

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Decode `bytes` (a whole number of blocks of `ty`) into f32 values appended to `out`.
///
/// The caller guarantees `bytes.len()` is a multiple of the block size and that `ty` can be
/// dequantized ([`GgmlType::can_dequantize`]); other types yield `false` and append nothing.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> bool {
    let (block_elems, block_bytes) = ty.block_geometry();
    out.reserve(bytes.len() / block_bytes * block_elems);
    let blocks = bytes.chunks_exact(block_bytes);
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q4_0 => blocks.for_each(|b| q4_0(b, out)),
        GgmlType::Q4_1 => blocks.for_each(|b| q4_1(b, out)),
        GgmlType::Q5_0 => blocks.for_each(|b| q5_0(b, out)),
        GgmlType::Q5_1 => blocks.for_each(|b| q5_1(b, out)),
        GgmlType::Q8_0 => blocks.for_each(|b| q8_0(b, out)),
        GgmlType::Q2_K => blocks.for_each(|b| q2_k(b, out)),
        GgmlType::Q3_K => blocks.for_each(|b| q3_k(b, out)),
        GgmlType::Q4_K => blocks.for_each(|b| q4_k(b, out)),
        GgmlType::Q5_K => blocks.for_each(|b| q5_k(b, out)),
        GgmlType::Q6_K => blocks.for_each(|b| q6_k(b, out)),
        _ => return false,
    }
    true
}

fn q4_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
    out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
}

fn q4_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qs = &b[4..20];
    out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
    out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
}

/// The 5-bit quants of Q5_0/Q5_1: low nibble from `qs`, fifth bit from `qh`
/// (bit j for element j, bit j+16 for element j+16).
fn q5_values(qh: u32, qs: &[u8]) -> [u8; 32] {
    let mut v = [0u8; 32];
    for j in 0..16 {
        let hi0 = ((qh >> j) & 1) as u8;
        let hi1 = ((qh >> (j + 16)) & 1) as u8;
        v[j] = (qs[j] & 0x0F) | (hi0 << 4);
        v[j + 16] = (qs[j] >> 4) | (hi1 << 4);
    }
    v
}

fn q5_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let v = q5_values(qh, &b[6..22]);
    out.extend(v.iter().map(|&q| (q as i32 - 16) as f32 * d));
}

fn q5_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let v = q5_values(qh, &b[8..24]);
    out.extend(v.iter().map(|&q| q as f32 * d + m));
}

fn q8_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
}

/// Scale and min of sub-block `j` (0..8) from the packed 12-byte K-quant scales:
/// sub-blocks 0..4 keep 6 bits in bytes 0..4 (scale) and 4..8 (min); sub-blocks 4..8 keep
/// their low 4 bits in bytes 8..12 and their top 2 bits in the spare top bits of bytes 0..8.
fn k_scale_min(j: usize, s: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((s[j] & 63) as f32, (s[j + 4] & 63) as f32)
    } else {
        let sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        let m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        (sc as f32, m as f32)
    }
}

fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    // Four groups of 64 elements; each group is 32 bytes: low nibbles, then high nibbles.
    for group in 0..4 {
        let q = &qs[group * 32..group * 32 + 32];
        let (sc0, m0) = k_scale_min(2 * group, scales);
        let (sc1, m1) = k_scale_min(2 * group + 1, scales);
        let (d0, min0, d1, min1) = (d * sc0, dmin * m0, d * sc1, dmin * m1);
        out.extend(q.iter().map(|&x| d0 * (x & 0x0F) as f32 - min0));
        out.extend(q.iter().map(|&x| d1 * (x >> 4) as f32 - min1));
    }
}

fn q5_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for group in 0..4 {
        let q = &qs[group * 32..group * 32 + 32];
        let (sc0, m0) = k_scale_min(2 * group, scales);
        let (sc1, m1) = k_scale_min(2 * group + 1, scales);
        let (d0, min0, d1, min1) = (d * sc0, dmin * m0, d * sc1, dmin * m1);
        // The fifth bit of group g's low half is bit 2g of qh[l], of its high half bit 2g+1.
        let (bit0, bit1) = (1u8 << (2 * group), 1u8 << (2 * group + 1));
        out.extend((0..32).map(|l| {
            let hi = if qh[l] & bit0 != 0 { 16.0 } else { 0.0 };
            d0 * ((q[l] & 0x0F) as f32 + hi) - min0
        }));
        out.extend((0..32).map(|l| {
            let hi = if qh[l] & bit1 != 0 { 16.0 } else { 0.0 };
            d1 * ((q[l] >> 4) as f32 + hi) - min1
        }));
    }
}

fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    let start = out.len();
    out.resize(start + QK_K, 0.0);
    let y = &mut out[start..];
    // Two halves of 128 elements; in each, ql holds 64 bytes and qh 32 bytes.
    for half in 0..2 {
        let (ql, qh) = (
            &ql[half * 64..half * 64 + 64],
            &qh[half * 32..half * 32 + 32],
        );
        let sc = &scales[half * 8..half * 8 + 8];
        let y = &mut y[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * (sc[is + k] as i8) as f32;
            y[l] = s(0) * q1 as f32;
            y[l + 32] = s(2) * q2 as f32;
            y[l + 64] = s(4) * q3 as f32;
            y[l + 96] = s(6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each block format against values worked out by hand from the layout table above.
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    fn decode(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
        let mut out = Vec::new();
        assert!(dequantize_into(ty, bytes, &mut out));
        out
    }

    #[test]
    fn plain_floats() {
        let mut b = Vec::new();
        b.extend(1.5f32.to_le_bytes());
        b.extend((-2.25f32).to_le_bytes());
        assert_eq!(decode(GgmlType::F32, &b), vec![1.5, -2.25]);
        let b = [h(0.5), h(-3.0)].concat();
        assert_eq!(decode(GgmlType::F16, &b), vec![0.5, -3.0]);
        // bf16 is the top half of an f32: 1.0f32 = 0x3F800000 -> 0x3F80.
        assert_eq!(
            decode(GgmlType::BF16, &[0x80, 0x3F, 0x00, 0xC0]),
            vec![1.0, -2.0]
        );
    }

    #[test]
    fn q4_0_block() {
        // d = 0.5; byte j = low nibble j, high nibble 15 - j.
        let mut b = h(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = decode(GgmlType::Q4_0, &b);
        assert_eq!(y.len(), 32);
        assert_eq!(y[0], -4.0); // (0 - 8) * 0.5
        assert_eq!(y[9], 0.5); // (9 - 8) * 0.5
        assert_eq!(y[16], 3.5); // high nibble of byte 0 = 15 -> (15 - 8) * 0.5
        assert_eq!(y[31], -4.0); // high nibble of byte 15 = 0
    }

    #[test]
    fn q4_1_block() {
        // d = 2, m = -1: x = 2q - 1.
        let mut b = [h(2.0), h(-1.0)].concat();
        b.extend((0..16u8).map(|j| j | (3 << 4)));
        let y = decode(GgmlType::Q4_1, &b);
        assert_eq!(&y[..3], &[-1.0, 1.0, 3.0]);
        assert_eq!(y[15], 29.0);
        assert!(y[16..].iter().all(|&v| v == 5.0)); // 2*3 - 1
    }

    #[test]
    fn q5_0_block() {
        // d = 1; all low nibbles 0; qh sets bit 0 (element 0) and bit 17 (element 17).
        let mut b = h(1.0).to_vec();
        b.extend((1u32 | (1 << 17)).to_le_bytes());
        b.extend([0u8; 16]);
        let y = decode(GgmlType::Q5_0, &b);
        assert_eq!(y[0], 0.0); // 16 - 16
        assert_eq!(y[1], -16.0);
        assert_eq!(y[17], 0.0);
        assert_eq!(y[16], -16.0);
    }

    #[test]
    fn q5_1_block() {
        // d = 0.5, m = 10; element 3 has low nibble 4 and fifth bit set: q = 20.
        let mut b = [h(0.5), h(10.0)].concat();
        b.extend((1u32 << 3).to_le_bytes());
        let mut qs = [0u8; 16];
        qs[3] = 4;
        b.extend(qs);
        let y = decode(GgmlType::Q5_1, &b);
        assert_eq!(y[3], 20.0 * 0.5 + 10.0);
        assert_eq!(y[0], 10.0);
    }

    #[test]
    fn q8_0_block() {
        let mut b = h(0.25).to_vec();
        b.extend((0..32).map(|j: i32| (j - 16) as i8 as u8));
        let y = decode(GgmlType::Q8_0, &b);
        assert_eq!(y[0], -4.0);
        assert_eq!(y[16], 0.0);
        assert_eq!(y[31], 3.75);
    }

    /// Packs eight 6-bit (scale, min) pairs the way the K-quants store them.
    fn pack_k_scales(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
        let mut s = [0u8; 12];
        for j in 0..4 {
            s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
            s[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
            s[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
        }
        s
    }

    #[test]
    fn k_scales_unpack() {
        let sc = [1, 2, 3, 63, 17, 33, 48, 5];
        let m = [0, 9, 60, 4, 62, 21, 1, 44];
        let s = pack_k_scales(sc, m);
        for j in 0..8 {
            assert_eq!(
                k_scale_min(j, &s),
                (sc[j] as f32, m[j] as f32),
                "sub-block {j}"
            );
        }
    }

    #[test]
    fn q4_k_block() {
        // d = 0.5, dmin = 0.25; sub-block j has scale j+1 and min 2j.
        let sc = [1, 2, 3, 4, 5, 6, 7, 8];
        let m = [0, 2, 4, 6, 8, 10, 12, 14];
        let mut b = [h(0.5), h(0.25)].concat();
        b.extend(pack_k_scales(sc, m));
        // Every quant byte: low nibble 3, high nibble 10.
        b.extend([3u8 | (10 << 4); 128]);
        let y = decode(GgmlType::Q4_K, &b);
        assert_eq!(y.len(), 256);
        // Element 0: sub-block 0, low nibble: 0.5*1*3 - 0.25*0 = 1.5.
        assert_eq!(y[0], 1.5);
        // Element 32: sub-block 1, high nibble of byte 0: 0.5*2*10 - 0.25*2 = 9.5.
        assert_eq!(y[32], 9.5);
        // Element 255: sub-block 7 (high nibbles of group 3): 0.5*8*10 - 0.25*14 = 36.5.
        assert_eq!(y[255], 36.5);
        // Element 200: group 3, low half -> sub-block 6: 0.5*7*3 - 0.25*12 = 7.5.
        assert_eq!(y[200], 7.5);
    }

    #[test]
    fn q5_k_block() {
        let sc = [2; 8];
        let m = [1; 8];
        let mut b = [h(1.0), h(1.0)].concat();
        b.extend(pack_k_scales(sc, m));
        // qh[0] = 0b0000_0100: group 1's low half (sub-block 2), element l = 0 gets +16.
        let mut qh = [0u8; 32];
        qh[0] = 0b100;
        b.extend(qh);
        b.extend([1u8 | (2 << 4); 128]);
        let y = decode(GgmlType::Q5_K, &b);
        assert_eq!(y[0], 2.0 * 1.0 - 1.0); // sub-block 0, q = 1
        assert_eq!(y[32], 2.0 * 2.0 - 1.0); // sub-block 1, q = 2
        assert_eq!(y[64], 2.0 * 17.0 - 1.0); // sub-block 2, q = 1 + 16
        assert_eq!(y[65], 2.0 * 1.0 - 1.0);
    }

    #[test]
    fn q6_k_block() {
        // ql all 0x21 (low nibble 1, high nibble 2), qh all 0 -> q1 = q2 = 1 - 32, q3 = q4 = 2 - 32.
        // scales: 1..=16, d = 0.5.
        let mut b = vec![0x21u8; 128];
        b.extend([0u8; 64]);
        b.extend((1..=16).map(|s: i8| s as u8));
        b.extend(h(0.5));
        let y = decode(GgmlType::Q6_K, &b);
        assert_eq!(y[0], 0.5 * 1.0 * -31.0); // half 0, l=0: scale[0]
        assert_eq!(y[16], 0.5 * 2.0 * -31.0); // l=16: is=1 -> scale[1]
        assert_eq!(y[32], 0.5 * 3.0 * -31.0); // q2 uses scale[is+2]
        assert_eq!(y[64], 0.5 * 5.0 * -30.0); // q3 uses scale[is+4]
        assert_eq!(y[96], 0.5 * 7.0 * -30.0); // q4 uses scale[is+6]
        assert_eq!(y[128], 0.5 * 9.0 * -31.0); // half 1 uses scales 8..16
        // The two high bits: qh[0] = 0b11 raises element 0 by 48.
        let mut b2 = b.clone();
        b2[128] = 0b11;
        let y2 = decode(GgmlType::Q6_K, &b2);
        assert_eq!(y2[0], 0.5 * 1.0 * 17.0);
    }

    #[test]
    fn unsupported_type_appends_nothing() {
        let mut out = Vec::new();
        assert!(!dequantize_into(GgmlType::IQ2_S, &[0u8; 82], &mut out));
        assert!(out.is_empty());
    }
}
