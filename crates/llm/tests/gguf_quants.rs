//! Every GGML type we dequantize, read through our GGUF reader and checked against gguf-py.
//!
//! The fixture `fixtures/gguf_quants/quants.gguf` was written by
//! `scripts/make_gguf_fixtures.py` with the `gguf` Python package: for each type `T` it holds
//! random blocks `T` and `T.expected`, the f32 values `gguf.quants.dequantize` gave for them.
//! Python is not needed to run this test.
#![allow(clippy::unwrap_used)]

use llm::gguf::write::GgufWriter;
use llm::gguf::{GgmlType, GgufError, GgufFile};
use std::path::PathBuf;

fn fixture() -> GgufFile {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_quants/quants.gguf");
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Every type this reader knows, by id.
fn all_types() -> Vec<GgmlType> {
    (0..64).filter_map(GgmlType::from_id).collect()
}

/// Exact equality (so +0 and -0 agree), or within 1e-6 relative for any last-bit difference
/// in float rounding.
fn agrees(got: f32, want: f32) -> bool {
    got == want || (got - want).abs() <= 1e-6 * want.abs()
}

#[test]
fn every_dequantizable_type_matches_gguf_py() {
    let file = fixture();
    let version = file.get_str("traitwatch.fixture.gguf_py_version").unwrap();
    let supported: Vec<GgmlType> = all_types()
        .into_iter()
        .filter(|t| t.can_dequantize())
        .collect();
    assert!(supported.contains(&GgmlType::Q2_K) && supported.contains(&GgmlType::Q3_K));
    for ty in supported {
        let name = ty.to_string();
        // A type added to `can_dequantize` needs a fixture too: rerun the script.
        let info = file.tensor_info(&name).unwrap_or_else(|| {
            panic!("the fixture has no {name} tensor; rerun scripts/make_gguf_fixtures.py")
        });
        assert_eq!(info.ggml_type, ty);
        let (shape, got) = file.tensor_f32(&name).unwrap();
        let (want_shape, want) = file.tensor_f32(&format!("{name}.expected")).unwrap();
        assert_eq!(shape, want_shape, "{name}: shape");
        assert_eq!(got.len(), want.len(), "{name}: element count");
        let bad: Vec<_> = (0..got.len())
            .filter(|&i| !agrees(got[i], want[i]))
            .collect();
        assert!(
            bad.is_empty(),
            "{name}: {} of {} values differ from gguf {version}; first at {}: ours {} vs {}",
            bad.len(),
            got.len(),
            bad[0],
            got[bad[0]],
            want[bad[0]]
        );
        let exact = (0..got.len()).filter(|&i| got[i] == want[i]).count();
        println!("{name}: {exact}/{} values bit-exact", got.len());
    }
}

#[test]
fn fixture_values_are_not_trivial() {
    // Guards against a regenerated fixture that would pass vacuously (all zeros, say).
    let file = fixture();
    for ty in all_types().into_iter().filter(|t| t.can_dequantize()) {
        let (_, want) = file.tensor_f32(&format!("{ty}.expected")).unwrap();
        let distinct: std::collections::BTreeSet<u32> = want.iter().map(|v| v.to_bits()).collect();
        assert!(
            want.iter().all(|v| v.is_finite()) && distinct.len() > want.len() / 8,
            "{ty}: the expected values are degenerate"
        );
        assert!(want.iter().any(|&v| v < 0.0) && want.iter().any(|&v| v > 0.0));
    }
}

#[test]
fn undequantizable_types_name_the_tensor_and_type() {
    let unsupported: Vec<GgmlType> = all_types()
        .into_iter()
        .filter(|t| !t.can_dequantize())
        .collect();
    assert!(unsupported.contains(&GgmlType::IQ2_XXS));
    let mut w = GgufWriter::new();
    for ty in &unsupported {
        let (elems, bytes) = ty.block_geometry();
        w.add_raw(&format!("w.{ty}"), &[elems], *ty, vec![0u8; bytes])
            .unwrap();
    }
    let file = GgufFile::from_bytes("mixed.gguf", w.to_bytes()).unwrap();
    for ty in unsupported {
        let name = format!("w.{ty}");
        let err = file.tensor_f32(&name).unwrap_err();
        assert!(
            matches!(&err, GgufError::UnsupportedType { tensor, ty: t, .. } if *tensor == name && *t == ty),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("mixed.gguf")
                && msg.contains(&format!("`{name}`"))
                && msg.contains(&format!("stored as {ty},"))
                && msg.contains("Q3_K"),
            "{msg}"
        );
    }
}
