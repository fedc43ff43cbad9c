//! Seeded Gaussian draws (Box-Muller) for random control bases and the isotropic null.

use rand::RngExt;
use rand::rngs::StdRng;

/// One standard normal draw by the Box-Muller transform.
pub(crate) fn gaussian(rng: &mut StdRng) -> f64 {
    // u1 in (0, 1] so that ln(u1) is finite; u2 in [0, 1).
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniformly random unit vector in `R^k`: a normalised Gaussian vector (empty if `k = 0`).
pub(crate) fn unit_vector(rng: &mut StdRng, k: usize) -> Vec<f64> {
    if k == 0 {
        return Vec::new();
    }
    loop {
        let v: Vec<f64> = (0..k).map(|_| gaussian(rng)).collect();
        let n = crate::norm(&v);
        // A zero Gaussian vector has probability zero; draw again rather than divide by it.
        if n > 0.0 {
            return v.into_iter().map(|x| x / n).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gaussian_moments() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| gaussian(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        // Standard errors: mean 1/sqrt(n) = 0.007, variance sqrt(2/n) = 0.01.
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
    }
}
