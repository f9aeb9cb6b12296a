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
//! Runs on the host (sorting 4096 classes per token is not a tensor op in candle); on the CPU
//! with the partial-selection kernel of the sampler's fused step, which keeps the same sets.

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
    if log_p.device().is_cpu() && log_p.dtype() == DType::F32 {
        // The partial-selection kernel (same kept sets, no full sort).
        let out = crate::host::with_f32(log_p, |values| {
            crate::guided_truncation::guided_truncated(
                &crate::guided_truncation::StepPrediction {
                    uncond: None,
                    cond: values,
                    scale: 1.0,
                },
                (b, c, n),
                rule,
                f32::NEG_INFINITY,
            )
        })?;
        return Ok(Tensor::from_vec(out, (b, c, n), log_p.device())?);
    }
    truncate_sorted(log_p, rule)
}

/// The definition: every column sorted in full (accelerators, and the tests' reference).
fn truncate_sorted(log_p: &Tensor, rule: Truncation) -> Result<Tensor> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    fn columns(b: usize, c: usize, n: usize, spread: f32, ties: bool, seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..b * c * n)
            .map(|_| {
                let x: f32 = rng.random::<f32>() * spread;
                if ties { (x * 4.0).round() / 4.0 } else { x }
            })
            .collect();
        let t = Tensor::from_vec(v, (b, c, n), &Device::Cpu).unwrap();
        candle_nn::ops::log_softmax(&t, 1).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The partial-selection kernel keeps exactly the classes the full sort keeps.
        #[test]
        fn partial_selection_keeps_what_the_full_sort_keeps(
            c in 2usize..300,
            n in 1usize..40,
            spread in prop_oneof![Just(0.01f32), Just(2.0f32), Just(30.0f32), Just(200.0f32)],
            ties in any::<bool>(),
            rule in prop_oneof![
                (0.01f32..1.0).prop_map(Truncation::TopR),
                Just(Truncation::TopR(1.0)),
                (1usize..40).prop_map(Truncation::TopK),
            ],
            seed in 0u64..1000,
        ) {
            let x = columns(2, c, n, spread, ties, seed);
            let fast = truncate(&x, rule).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let slow = truncate_sorted(&x, rule).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            prop_assert_eq!(fast, slow);
        }
    }
}
