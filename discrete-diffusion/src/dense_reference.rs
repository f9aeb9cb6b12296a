//! A dense, f64 reference implementation used only by the tests: explicit `(states × states)`
//! transition matrices built from the coefficients, matrix products, and posteriors computed by
//! Bayes' rule. Slow and obvious on purpose.

use crate::{Coefficients, Transition};

pub type Matrix = Vec<Vec<f64>>;

/// The dense matrix `M[i][j] = q(x' = j | x = i)` of a coefficient triple.
pub fn matrix<T: Transition + ?Sized>(transition: &T, c: Coefficients) -> Matrix {
    let k = transition.num_classes();
    let s = transition.num_states();
    let mut m = vec![vec![0.0; s]; s];
    for (i, row) in m.iter_mut().enumerate().take(k) {
        for (j, v) in row.iter_mut().enumerate().take(k) {
            *v = c.replace + if i == j { c.stay } else { 0.0 };
        }
        if s > k {
            row[k] = c.mask;
        }
    }
    if s > k {
        m[k][k] = 1.0;
    }
    m
}

pub fn identity(n: usize) -> Matrix {
    (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect()
}

pub fn matmul(a: &Matrix, b: &Matrix) -> Matrix {
    let n = a.len();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| (0..n).map(|k| a[i][k] * b[k][j]).sum())
                .collect()
        })
        .collect()
}

/// `Q_t` (one step).
pub fn step<T: Transition + ?Sized>(transition: &T, t: usize) -> Matrix {
    matrix(transition, transition.step(t))
}

/// `Q_{s+1} ⋯ Q_t` as a product of one-step matrices (`s = None`: from `x_0`).
pub fn product<T: Transition + ?Sized>(transition: &T, from: Option<usize>, to: usize) -> Matrix {
    let first = from.map_or(0, |s| s + 1);
    (first..=to).fold(identity(transition.num_states()), |acc, t| {
        matmul(&acc, &step(transition, t))
    })
}

/// `q(x_s = i | x_t = j, x_0)` by Bayes' rule, for every `i`; `s = None` means `x_0` itself.
/// Returns `None` when `q(x_t = j | x_0) = 0`.
pub fn bayes_posterior<T: Transition + ?Sized>(
    transition: &T,
    x0: usize,
    x_t: usize,
    t: usize,
    s: Option<usize>,
) -> Option<Vec<f64>> {
    let states = transition.num_states();
    let cumulative_t = product(transition, None, t);
    let evidence = cumulative_t[x0][x_t];
    if evidence <= 0.0 {
        return None;
    }
    let to_s = match s {
        Some(s) => product(transition, None, s),
        None => identity(states),
    };
    let s_to_t = product(transition, s, t);
    Some(
        (0..states)
            .map(|i| to_s[x0][i] * s_to_t[i][x_t] / evidence)
            .collect(),
    )
}

/// `Σ_{x0} p̂(x0) q(x_s | x_t, x0)` over the `x0` compatible with `x_t`, renormalised; `None`
/// when no `x0` can produce `x_t`.
pub fn x0_parameterised<T: Transition + ?Sized>(
    transition: &T,
    p_x0: &[f64],
    x_t: usize,
    t: usize,
    s: Option<usize>,
) -> Option<Vec<f64>> {
    let states = transition.num_states();
    let mut out = vec![0.0; states];
    let mut mass = 0.0;
    for (x0, &p) in p_x0.iter().enumerate() {
        if let Some(post) = bayes_posterior(transition, x0, x_t, t, s) {
            mass += p;
            for (o, q) in out.iter_mut().zip(post) {
                *o += p * q;
            }
        }
    }
    (mass > 0.0).then(|| out.iter().map(|o| o / mass).collect())
}
