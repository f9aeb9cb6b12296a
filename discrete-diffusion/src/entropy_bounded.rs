//! The entropy-bounded sampler ([`EntropyBounded`]; EB-sampler, arXiv 2505.24857, Eq. 9);
//! the math is on [`EntropyBounded`].

use serde::{Deserialize, Serialize};

use crate::unmasking::{RowContext, UnmaskPolicy, check_temperature};
use crate::{Error, NoiseSource, Result};

/// The entropy-bounded sampler (EB-sampler; Ben-Hamu, Gat, Severo, Nolte & Karrer 2025,
/// "Accelerated sampling from masked diffusion models via entropy bounded unmasking",
/// arXiv 2505.24857, §4, Eq. 9).
///
/// Committing several masked positions from their marginals at once incurs an error bounded by
/// the sum of their entropies minus the largest one (the mutual information they could share
/// cannot exceed it). Each call therefore sorts the masked positions by the entropy of `p̂`,
/// lowest first, and commits the longest prefix `U` with `Σ_{i∈U} H_i − max_{i∈U} H_i ≤ γ`
/// (always at least one position), each to its candidate drawn at `temperature`. `γ = 0`
/// commits one position per call (ordered by entropy, which depends only on the state, so with
/// a perfect denoiser the sample is exact); larger `γ` trades accuracy for fewer calls, and the
/// sampler spends its calls where the model is uncertain. At most one call per masked position.
/// Committed tokens are final (on the replace mass see [`crate::SamplingMethod`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntropyBounded {
    /// `γ`, in nats: how much entropy beyond the largest one a call may commit.
    pub bound: f64,
    /// Temperature of the committed candidates (1 = `p̂`, 0 = argmax).
    #[serde(default = "one")]
    pub temperature: f64,
}

fn one() -> f64 {
    1.0
}

impl EntropyBounded {
    /// Bound `γ` nats, candidates from `p̂`.
    pub fn new(bound: f64) -> Self {
        Self {
            bound,
            temperature: 1.0,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.bound.is_finite() && self.bound >= 0.0) {
            return Err(Error::InvalidSetting(format!(
                "the entropy bound must be a finite number of nats ≥ 0, got {}",
                self.bound
            )));
        }
        check_temperature("temperature", self.temperature)
    }
}

impl UnmaskPolicy for EntropyBounded {
    fn temperature(&self) -> f64 {
        self.temperature
    }

    fn planned_calls(&self, masked: usize) -> usize {
        masked
    }

    fn update(&mut self, ctx: &RowContext, row: &mut [u32], _: &mut dyn NoiseSource) -> Result<()> {
        let mut by_entropy: Vec<(f64, usize)> = ctx
            .masked(row)
            .into_iter()
            .map(|p| (ctx.view.entropy(ctx.image, p).max(0.0), p))
            .collect();
        by_entropy.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut sum, mut max) = (0.0, 0.0f64);
        for (j, &(h, p)) in by_entropy.iter().enumerate() {
            sum += h;
            max = max.max(h);
            if j > 0 && sum - max > self.bound {
                break;
            }
            row[p] = ctx.view.candidate(ctx.image, p);
        }
        Ok(())
    }
}
