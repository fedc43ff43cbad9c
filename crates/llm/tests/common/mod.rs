//! What the reference-number tests share: reading the fixtures' JSON arrays and comparing
//! our numbers with transformers'.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// `|got - want| <= tol` everywhere.
pub fn assert_close_abs(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= tol,
        "{what}: max |diff| {worst} > {tol}\n got {got:?}\nwant {want:?}"
    );
}

/// `|got - want| <= tol · max(1, |want|)`: the residual stream grows to norms of 10^4, so
/// an absolute bound would be meaningless deep in the model.
pub fn assert_close_rel(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(
        worst <= tol,
        "{what}: max relative |diff| {worst} > {tol}\n got {got:?}\nwant {want:?}"
    );
}
