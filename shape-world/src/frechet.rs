//! Fréchet distance between two sets of feature vectors (the FID formula of Heusel et al. 2017,
//! on the features of [`crate::FeatureNet`] instead of Inception):
//! `‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})`, with `Tr((Σ₁Σ₂)^{1/2}) = Σ sqrt(λ_i)` for the
//! eigenvalues of the symmetric `Σ₁^{1/2} Σ₂ Σ₁^{1/2}` (f64, cyclic Jacobi eigen-solver).

// Dense linear algebra reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

/// Mean and covariance (unbiased) of row vectors.
pub fn mean_and_covariance(rows: &[Vec<f32>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = rows.len().max(1) as f64;
    let d = rows.first().map_or(0, Vec::len);
    let mut mean = vec![0.0; d];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64 / n;
        }
    }
    let mut cov = vec![vec![0.0; d]; d];
    for r in rows {
        for i in 0..d {
            let di = r[i] as f64 - mean[i];
            for j in i..d {
                cov[i][j] += di * (r[j] as f64 - mean[j]);
            }
        }
    }
    let denominator = (n - 1.0).max(1.0);
    for i in 0..d {
        for j in i..d {
            cov[i][j] /= denominator;
            cov[j][i] = cov[i][j];
        }
    }
    (mean, cov)
}

/// Eigen-decomposition of a symmetric matrix: (eigenvalues, eigenvectors as columns).
pub fn symmetric_eigen(a: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut a: Vec<Vec<f64>> = a.to_vec();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

fn matmul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| (0..n).map(|k| a[i][k] * b[k][j]).sum())
                .collect()
        })
        .collect()
}

/// Symmetric PSD square root.
fn sqrt_psd(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let (values, vectors) = symmetric_eigen(a);
    let n = a.len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    (0..n)
                        .map(|k| vectors[i][k] * values[k].max(0.0).sqrt() * vectors[j][k])
                        .sum()
                })
                .collect()
        })
        .collect()
}

/// The Fréchet distance between two Gaussian fits `(μ, Σ)`.
pub fn frechet_distance(a: &(Vec<f64>, Vec<Vec<f64>>), b: &(Vec<f64>, Vec<Vec<f64>>)) -> f64 {
    let mean_term: f64 = a.0.iter().zip(&b.0).map(|(x, y)| (x - y) * (x - y)).sum();
    let s1 = sqrt_psd(&a.1);
    let m = matmul(&matmul(&s1, &b.1), &s1);
    let (values, _) = symmetric_eigen(&m);
    let cross: f64 = values.iter().map(|v| v.max(0.0).sqrt()).sum();
    let trace = |c: &Vec<Vec<f64>>| (0..c.len()).map(|i| c[i][i]).sum::<f64>();
    (mean_term + trace(&a.1) + trace(&b.1) - 2.0 * cross).max(0.0)
}
