//! Feature maps: how a `[d]` activation becomes `k` named features.
//!
//! [`FeatureMap`] is the seam every drift feature set meets at; [`Basis`] is the linear kind
//! (trait directions, random control directions): feature `j` is `<h, b_j>` for a unit `b_j`.

use crate::{DriftError, Result, check_finite, dot, norm};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::HashSet;

/// Maps one activation vector `[d]` to `k` named features `[k]`.
///
/// Drift is computed from prompt-mean activations, which is exact only for linear maps
/// (`mean_i f(h_i) = f(mean_i h_i)`); implement this trait for linear maps only.
pub trait FeatureMap {
    /// Name of the feature set, e.g. `traits` or `random_3`.
    fn feature_set(&self) -> &str;
    /// `[k]` feature names, in output order.
    fn feature_names(&self) -> &[String];
    /// `d`, the input length expected by [`FeatureMap::apply`].
    fn dim(&self) -> usize;
    /// Features `[k]` of one activation `h` (`[d]`); errors if `h.len() != d`.
    fn apply(&self, h: &[f64]) -> Result<Vec<f64>>;
}

/// A set of `k` unit directions in `R^d`; feature `j` of `h` is `<h, vectors[j]>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Basis {
    feature_set: String,
    names: Vec<String>,
    /// `[k][d]`, each row unit L2 norm.
    vectors: Vec<Vec<f64>>,
}

impl Basis {
    /// A basis from `vectors` (`[k][d]`), one per name; each is scaled to unit L2 norm.
    ///
    /// Errors: no vectors, `names.len() != k`, duplicate names, ragged or empty rows,
    /// non-finite values, a zero vector.
    pub fn new(
        feature_set: impl Into<String>,
        names: Vec<String>,
        vectors: Vec<Vec<f64>>,
    ) -> Result<Self> {
        let d = crate::check_matrix("basis vectors", &vectors)?;
        if d == 0 {
            return Err(DriftError::Empty {
                what: "basis vector",
            });
        }
        if names.len() != vectors.len() {
            return Err(DriftError::DimensionMismatch {
                what: "basis names vs vectors",
                expected: vectors.len(),
                found: names.len(),
            });
        }
        let mut seen = HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(DriftError::DuplicateName(dup.clone()));
        }
        let mut unit = Vec::with_capacity(vectors.len());
        for (index, v) in vectors.into_iter().enumerate() {
            let n = norm(&v);
            if n == 0.0 {
                return Err(DriftError::ZeroVector {
                    index,
                    name: names[index].clone(),
                });
            }
            unit.push(v.into_iter().map(|x| x / n).collect());
        }
        Ok(Self {
            feature_set: feature_set.into(),
            names,
            vectors: unit,
        })
    }

    /// Like [`Basis::new`] for f32 rows `[k][d]` (e.g. read from safetensors), widened to f64.
    pub fn from_rows_f32(
        feature_set: impl Into<String>,
        names: Vec<String>,
        rows: &[Vec<f32>],
    ) -> Result<Self> {
        for (row, values) in rows.iter().enumerate() {
            check_finite("basis vectors", row, values)?;
        }
        let vectors = rows
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        Self::new(feature_set, names, vectors)
    }

    /// `k` random unit directions in `R^d` (normalised Gaussians), a control basis
    /// (METHOD: 10 random bases). Deterministic for `seed`; features are named
    /// `random_0 .. random_{k-1}`. Errors if `k` or `d` is zero.
    pub fn random(feature_set: impl Into<String>, k: usize, d: usize, seed: u64) -> Result<Self> {
        if k == 0 || d == 0 {
            return Err(DriftError::InvalidArgument(format!(
                "random basis needs k > 0 and d > 0, got k = {k}, d = {d}"
            )));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let vectors = (0..k)
            .map(|_| crate::rng::unit_vector(&mut rng, d))
            .collect();
        let names = (0..k).map(|i| format!("random_{i}")).collect();
        Self::new(feature_set, names, vectors)
    }

    /// `[k][d]` unit basis vectors, in feature order.
    pub fn vectors(&self) -> &[Vec<f64>] {
        &self.vectors
    }
}

impl FeatureMap for Basis {
    fn feature_set(&self) -> &str {
        &self.feature_set
    }

    fn feature_names(&self) -> &[String] {
        &self.names
    }

    fn dim(&self) -> usize {
        self.vectors.first().map_or(0, Vec::len)
    }

    fn apply(&self, h: &[f64]) -> Result<Vec<f64>> {
        if h.len() != self.dim() {
            return Err(DriftError::DimensionMismatch {
                what: "feature map input",
                expected: self.dim(),
                found: h.len(),
            });
        }
        Ok(self.vectors.iter().map(|v| dot(v, h)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalises_and_projects() {
        let b = Basis::new(
            "t",
            names(&["a", "b"]),
            vec![vec![3.0, 4.0], vec![0.0, -2.0]],
        )
        .unwrap();
        assert_eq!(b.vectors()[0], vec![0.6, 0.8]);
        assert_eq!(b.vectors()[1], vec![0.0, -1.0]);
        assert_eq!(b.dim(), 2);
        assert_eq!(b.apply(&[1.0, 1.0]).unwrap(), vec![1.4, -1.0]);
        let err = b.apply(&[1.0]).unwrap_err();
        assert!(matches!(
            err,
            DriftError::DimensionMismatch {
                expected: 2,
                found: 1,
                ..
            }
        ));
    }

    #[test]
    fn rejects_bad_bases() {
        let zero = Basis::new("t", names(&["a"]), vec![vec![0.0, 0.0]]).unwrap_err();
        assert!(zero.to_string().contains("(`a`) has zero norm"), "{zero}");
        let dup = Basis::new("t", names(&["a", "a"]), vec![vec![1.0], vec![2.0]]).unwrap_err();
        assert!(matches!(dup, DriftError::DuplicateName(ref n) if n == "a"));
        let count = Basis::new("t", names(&["a"]), vec![vec![1.0], vec![2.0]]).unwrap_err();
        assert!(matches!(count, DriftError::DimensionMismatch { .. }));
        let nan = Basis::from_rows_f32("t", names(&["a"]), &[vec![f32::NAN]]).unwrap_err();
        assert!(matches!(nan, DriftError::NonFinite { .. }));
        assert!(Basis::random("r", 0, 3, 1).is_err());
    }

    #[test]
    fn random_basis_is_unit_and_seeded() {
        let a = Basis::random("random_0", 7, 64, 11).unwrap();
        assert_eq!(a.feature_names().len(), 7);
        assert_eq!(a.feature_names()[6], "random_6");
        for v in a.vectors() {
            assert_eq!(v.len(), 64);
            assert!((norm(v) - 1.0).abs() < 1e-12);
        }
        assert_eq!(a, Basis::random("random_0", 7, 64, 11).unwrap());
        let b = Basis::random("random_0", 7, 64, 12).unwrap();
        assert_ne!(a.vectors(), b.vectors());
    }
}
