//! Small statistics the figures share: ranks, Spearman's rho, OLS residuals.

/// Ranks (1-based, ties averaged).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson's r; None with fewer than 3 pairs or no variance.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 3 {
        return None;
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Spearman's rho (Pearson on ranks); None with fewer than 3 pairs or no variance.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    pearson(&ranks(a), &ranks(b))
}

/// Residuals below this share of `y`'s largest magnitude are rounding: the fit is exact.
const EXACT_FIT: f64 = 1e-9;

/// Residuals of `y` after ordinary least squares on `x` with an intercept (`y` itself
/// centred when `x` has no variance). When `x` explains `y` exactly (a constant `y`
/// included) the residuals are all zero, not rounding noise whose ranks a correlation
/// would read as signal.
pub fn residuals(y: &[f64], x: &[f64]) -> Vec<f64> {
    let n = y.len().min(x.len()).max(1) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let r: Vec<f64> = x
        .iter()
        .zip(y)
        .map(|(a, b)| b - my - slope * (a - mx))
        .collect();
    let tol = EXACT_FIT * y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if r.iter().all(|v| v.abs() <= tol) {
        return vec![0.0; r.len()];
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_and_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 15.0, 40.0]);
        assert!((rho.unwrap_or(0.0) - 0.8).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn residuals_remove_the_linear_part() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        assert!(residuals(&y, &x).iter().all(|r| r.abs() < 1e-12));
        let r = residuals(&[1.0, 0.0, 0.0, 1.0], &x);
        assert!(r.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>().abs() < 1e-12);
        // A constant (whose mean is not exact in floating point) or an exact linear
        // function of x leaves no variation: Spearman has nothing to rank.
        let x: Vec<f64> = (0..10).map(|i| 0.013 * f64::from(i) - 0.05).collect();
        let z = [0.3, -0.2, 0.9, 0.1, 0.0, 0.4, -0.7, 0.2, 0.5, -0.1];
        for y in [vec![0.7; 10], x.iter().map(|v| 0.1 - 3.3 * v).collect()] {
            let r = residuals(&y, &x);
            assert!(r.iter().all(|v| *v == 0.0), "{r:?}");
            assert_eq!(spearman(&r, &z), None);
        }
    }
}
