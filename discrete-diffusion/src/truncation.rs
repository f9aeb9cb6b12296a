//! Truncation of predicted `x_0` distributions before sampling.
//!
//! * [`Truncation::TopR`]: diffusers' `VQDiffusionPipeline.truncate` (docs/reference-behaviour.md §1.8): per
//!   column, sort descending, keep the top-1 always and every entry whose preceding cumulative
//!   probability is `< r` (so the entry that crosses `r` is kept); the rest become `-inf`. The
//!   cumulative sum accumulates in f64 and rounds each prefix to f32, as PyTorch's CPU kernel
//!   does, and compares with `r` in f32 — so even `r = 1` can drop a far tail, exactly like the
//!   reference. Survivors are not renormalised.
//! * [`Truncation::TopK`]: the original repository's `top{k}p`: keep the `k` largest.
//!
//! Runs on the host (sorting 4096 classes per token is not a tensor op in candle).

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A truncation rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Truncation {
    /// Keep everything.
    #[default]
    None,
    /// Keep the smallest top set whose cumulative probability reaches `r` (diffusers
    /// `truncation_rate`), `0 < r ≤ 1`.
    TopR(f32),
    /// Keep the `k` most probable classes.
    TopK(usize),
}

impl Truncation {
    /// Validates the parameter.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Truncation::TopR(r) if !(r > 0.0 && r <= 1.0) => Err(Error::InvalidSetting(format!(
                "truncation rate must be in (0, 1], got {r}"
            ))),
            Truncation::TopK(0) => {
                Err(Error::InvalidSetting("top-k truncation needs k ≥ 1".into()))
            }
            _ => Ok(()),
        }
    }
}

/// Applies `rule` to `(B, C, N)` log-probabilities, returning the same shape with dropped
/// entries at `-inf`.
pub fn truncate(log_p: &Tensor, rule: Truncation) -> Result<Tensor> {
    rule.validate()?;
    if rule == Truncation::None {
        return Ok(log_p.clone());
    }
    let (b, c, n) = log_p.dims3()?;
    let mut values = log_p
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut order: Vec<usize> = Vec::with_capacity(c);
    for batch in 0..b {
        let base = batch * c * n;
        for pos in 0..n {
            let at = |class: usize| base + class * n + pos;
            order.clear();
            order.extend(0..c);
            order.sort_by(|&i, &j| values[at(j)].total_cmp(&values[at(i)]).then(i.cmp(&j)));
            let keep = match rule {
                Truncation::TopK(k) => k.min(c),
                Truncation::TopR(r) => {
                    let mut acc = 0.0f64;
                    let mut kept = c;
                    for (rank, &class) in order.iter().enumerate() {
                        acc += values[at(class)].exp() as f64;
                        if (acc as f32) >= r {
                            kept = rank + 1;
                            break;
                        }
                    }
                    kept.min(c)
                }
                Truncation::None => c,
            };
            for &class in &order[keep..] {
                values[at(class)] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(values, (b, c, n), log_p.device())?)
}
