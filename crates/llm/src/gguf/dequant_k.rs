//! Dequantization of the 2- and 3-bit K-quants, Q2_K and Q3_K.
//!
//! Both split a 256-element block into 16 sub-blocks of 16 elements, each with its own
//! scale, and pack the low two bits of every quant the same way: two runs of 32 bytes,
//! where byte `l` of run `h` holds, in bit pairs 0-1, 2-3, 4-5 and 6-7, the elements
//! `128h + l`, `128h + 32 + l`, `128h + 64 + l` and `128h + 96 + l`. Walking a run four times
//! with growing shifts therefore yields 128 consecutive elements.
//!
//! | type | bytes | layout |
//! |------|-------|--------|
//! | Q2_K | 84  | scales[16] (low nibble: scale, high nibble: min), qs[64], d:f16, dmin:f16; x = d·sc·q − dmin·m |
//! | Q3_K | 110 | hmask[32] (third bit), qs[64], scales[12] (16 × 6-bit, offset 32), d:f16; x = d·(sc−32)·(q − 4 if the hmask bit is clear) |
//!
//! The products are formed in the same order as ggml's reference (scale times `d` first,
//! then times the quant), so the f32 results match it bit for bit.

use super::types::QK_K;
use half::f16;

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Calls `emit(sub_block, l, q)` for all 256 two-bit quants of `qs` (64 bytes) in element
/// order: sub-block `s` (0..16) covers elements `16s..16s + 16` and `l` (0..32) is the byte
/// the quant came from within its 32-byte run, which Q3_K also needs to find the third bit.
fn for_each_2bit(qs: &[u8], mut emit: impl FnMut(usize, usize, u8)) {
    for half in 0..2 {
        let run = &qs[half * 32..half * 32 + 32];
        for pair in 0..4 {
            let shift = 2 * pair;
            for (l, &byte) in run.iter().enumerate() {
                let sub_block = half * 8 + pair * 2 + l / 16;
                emit(sub_block, l, (byte >> shift) & 3);
            }
        }
    }
}

pub(super) fn q2_k(b: &[u8], out: &mut Vec<f32>) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    // Each sub-block's byte packs a 4-bit scale and a 4-bit min, both unsigned.
    let mut step = [0f32; 16];
    let mut offset = [0f32; 16];
    for (s, &packed) in scales.iter().enumerate() {
        step[s] = d * (packed & 0x0F) as f32;
        offset[s] = dmin * (packed >> 4) as f32;
    }
    out.reserve(QK_K);
    for_each_2bit(qs, |s, _, q| out.push(step[s] * q as f32 - offset[s]));
}

/// The 16 signed six-bit scales of a Q3_K block from its 12 packed bytes. Bytes 0..8 hold
/// the low four bits (scales 0..8 in the low nibbles, 8..16 in the high ones); bytes 8..12
/// hold the top two bits, scale `j` in byte `8 + j % 4` at bit `2 * (j / 4)`. Stored values
/// are offset by 32 so that the signed range −32..32 fits six unsigned bits.
fn q3_k_scales(packed: &[u8]) -> [i8; 16] {
    let mut scales = [0i8; 16];
    for (j, scale) in scales.iter_mut().enumerate() {
        let low = if j < 8 {
            packed[j] & 0x0F
        } else {
            packed[j - 8] >> 4
        };
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        *scale = (low | (high << 4)) as i8 - 32;
    }
    scales
}

pub(super) fn q3_k(b: &[u8], out: &mut Vec<f32>) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let scales = q3_k_scales(&b[96..108]);
    let d = f16_at(b, 108);
    let step: [f32; 16] = std::array::from_fn(|s| d * scales[s] as f32);
    out.reserve(QK_K);
    // The third bit of the quant from byte `l` of sub-block `s` sits in hmask[l], at the
    // bit numbered by which 32-element stripe of the block it belongs to (s / 2). The bit
    // is stored inverted: a set bit means the quant is used as is, a clear one subtracts 4,
    // so the three bits span −4..=3.
    for_each_2bit(qs, |s, l, q| {
        let high_set = hmask[l] & (1 << (s / 2)) != 0;
        let value = q as i32 - if high_set { 0 } else { 4 };
        out.push(step[s] * value as f32);
    });
}

#[cfg(test)]
mod tests {
    //! Hand-worked blocks; the agreement with gguf-py on random blocks is checked by
    //! the `gguf_quants` integration test.
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    fn decode(f: fn(&[u8], &mut Vec<f32>), b: &[u8]) -> Vec<f32> {
        let mut out = Vec::new();
        f(b, &mut out);
        assert_eq!(out.len(), QK_K);
        out
    }

    #[test]
    fn two_bit_order() {
        // Byte l of run h holds its four elements 32 apart.
        let mut qs = [0u8; 64];
        qs[0] = 0b11_10_01_00; // elements 0, 32, 64, 96 = 0, 1, 2, 3
        qs[33] = 0b00_00_11_00; // run 1, byte 1: element 128 + 32 + 1 = 161 gets 3
        let mut seen = vec![(0, 0, 0); QK_K];
        let mut i = 0;
        for_each_2bit(&qs, |s, l, q| {
            seen[i] = (s, l, q);
            i += 1;
        });
        assert_eq!(i, QK_K);
        assert_eq!(seen[0], (0, 0, 0));
        assert_eq!(seen[32], (2, 0, 1));
        assert_eq!(seen[64], (4, 0, 2));
        assert_eq!(seen[96], (6, 0, 3));
        assert_eq!(seen[161], (10, 1, 3));
        assert_eq!(
            seen[17].0, 1,
            "the second 16 bytes of a run are the next sub-block"
        );
    }

    #[test]
    fn q2_k_block() {
        // Sub-block s: scale s % 16, min 1; d = 0.5, dmin = 0.25; every quant 2 except
        // element 255 (run 1, byte 31, top pair) = 3.
        let mut b: Vec<u8> = (0..16u8).map(|s| s | (1 << 4)).collect();
        let mut qs = [0b10_10_10_10u8; 64];
        qs[63] = 0b11_10_10_10;
        b.extend(qs);
        b.extend(h(0.5));
        b.extend(h(0.25));
        let y = decode(q2_k, &b);
        assert_eq!(y[0], 0.5 * 0.0 * 2.0 - 0.25); // sub-block 0 has scale 0
        assert_eq!(y[16], 0.5 * 1.0 * 2.0 - 0.25);
        assert_eq!(y[200], 0.5 * 12.0 * 2.0 - 0.25);
        assert_eq!(y[255], 0.5 * 15.0 * 3.0 - 0.25);
    }

    /// Packs 16 scales in −32..32 the way Q3_K stores them.
    fn pack_q3_scales(scales: [i8; 16]) -> [u8; 12] {
        let mut p = [0u8; 12];
        for (j, &s) in scales.iter().enumerate() {
            let v = (s + 32) as u8;
            if j < 8 {
                p[j] |= v & 0x0F;
            } else {
                p[j - 8] |= (v & 0x0F) << 4;
            }
            p[8 + j % 4] |= (v >> 4) << (2 * (j / 4));
        }
        p
    }

    #[test]
    fn q3_k_scales_unpack() {
        let scales = [-32, -1, 0, 31, 5, -17, 16, 2, 9, -9, 30, -30, 1, 7, -8, 15];
        assert_eq!(q3_k_scales(&pack_q3_scales(scales)), scales);
    }

    #[test]
    fn q3_k_block() {
        // All quants' low bits 1; hmask bit set only for stripe 0 (bit 0) and, for l = 5,
        // stripe 7 (bit 7). Scale of sub-block s is s - 8; d = 0.5.
        let mut hmask = [1u8; 32];
        hmask[5] |= 1 << 7;
        let mut b = hmask.to_vec();
        b.extend([0b01_01_01_01u8; 64]);
        b.extend(pack_q3_scales(std::array::from_fn(|s| s as i8 - 8)));
        b.extend(h(0.5));
        let y = decode(q3_k, &b);
        assert_eq!(y[0], 0.5 * -8.0 * 1.0); // stripe 0: bit set, q = 1
        assert_eq!(y[32], 0.5 * -6.0 * -3.0); // stripe 1: bit clear, q = 1 - 4
        assert_eq!(y[224 + 5], 0.5 * 6.0 * 1.0); // stripe 7, l = 5: bit set
        assert_eq!(y[224 + 21], 0.5 * 7.0 * -3.0); // stripe 7, l = 21: bit clear
    }
}
