//! Improved VQ-Diffusion's high-quality inference (Tang et al. 2022, §3.2; original
//! `DiffusionTransformer.p_sample` with `prior_rule` 1 or 2, docs/reference-behaviour.md §6.6).
//!
//! Instead of resampling every position at each step, a fixed number of *masked* positions is
//! unmasked per step, at most `max_per_call` per model call:
//!
//! * rule 1 ([`PriorRule::Random`]): positions chosen uniformly at random;
//! * rule 2 ([`PriorRule::Purity`]): positions chosen with probability ∝ purity
//!   `max_c p̂(x_0 = c)` (normalised by its maximum per image), and, with `prior_weight r > 0`,
//!   candidates drawn from the sharpened `softmax((1 + r·purity)·log p̂)` (paper Eq. 11).
//!
//! Candidates are Gumbel-max draws for every position; chosen positions take their candidate.
//! If exactly one position would be left for the next call of the same step, it is taken now
//! (the original's rule). Tokens are only unmasked, never replaced, for `t ≥ 1`; the last step
//! (`t = 0`) resamples every position from `p̂(x_0)`.

use candle_core::{D, DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::log_space::log_normalise;
use crate::{Error, LOG_PROB_FLOOR, NoiseSource, Result, gumbel_argmax};

/// Position-selection rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum PriorRule {
    /// Rule 1: uniformly random positions.
    Random,
    /// Rule 2: purity-weighted positions, with probability sharpening `prior_weight` (`r`).
    Purity {
        /// `r` of Eq. 11 (0 = no sharpening).
        prior_weight: f64,
    },
}

/// How many positions each step `t ≥ 1` unmasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "counts", rename_all = "snake_case")]
pub enum UnmaskSchedule {
    /// `N` positions spread evenly over `t = T-1 … 1` (remainders to the earliest reverse steps).
    Even,
    /// Explicit counts indexed by `t` (entry 0 unused); must sum to `N` over `t ≥ 1`.
    Custom(Vec<usize>),
}

impl UnmaskSchedule {
    /// The original repository's table for `T = 100`, `N = 1024` (`update_n_sample`).
    pub fn original_ithq(max_per_call: usize) -> Self {
        let mut counts = vec![1, if max_per_call <= 10 { 6 } else { 10 }];
        for _ in 0..32 {
            counts.extend([11, 10, 10]);
        }
        counts.extend([11, if max_per_call <= 10 { 15 } else { 11 }]);
        UnmaskSchedule::Custom(counts)
    }

    /// Counts per timestep (`len = T`, entry 0 unused).
    pub fn counts(&self, num_timesteps: usize, num_tokens: usize) -> Result<Vec<usize>> {
        match self {
            UnmaskSchedule::Even => {
                let steps = num_timesteps.saturating_sub(1).max(1);
                let (base, extra) = (num_tokens / steps, num_tokens % steps);
                let mut counts = vec![0; num_timesteps.max(2)];
                for (t, count) in counts.iter_mut().enumerate().skip(1) {
                    // Earliest reverse steps are the largest t.
                    *count = base + usize::from(num_timesteps - t <= extra);
                }
                Ok(counts)
            }
            UnmaskSchedule::Custom(counts) => {
                let total: usize = counts.iter().skip(1).sum();
                if counts.len() != num_timesteps || total != num_tokens {
                    return Err(Error::InvalidSetting(format!(
                        "unmask schedule has {} entries summing to {total} over t ≥ 1; expected {num_timesteps} entries summing to {num_tokens}",
                        counts.len()
                    )));
                }
                Ok(counts.clone())
            }
        }
    }
}

/// Settings of the improved sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImprovedPrior {
    /// Rule 1 or 2.
    pub rule: PriorRule,
    /// Maximum positions unmasked per model call (`prior_ps`).
    pub max_per_call: usize,
    /// Positions to unmask per step.
    pub schedule: UnmaskSchedule,
}

/// One model call's worth of unmasking: returns the new tokens and how many positions of each
/// batch element were unmasked. `log_p_x0` `(B, K, N)`; `x_t` `(B, N)` u32; `budget[i]` = positions
/// still to unmask at this step for element `i`.
pub(crate) fn unmask_step(
    prior: &ImprovedPrior,
    log_p_x0: &Tensor,
    x_t: &Tensor,
    mask_index: u32,
    budget: &[usize],
    noise: &mut dyn NoiseSource,
) -> Result<(Tensor, Vec<usize>)> {
    let (b, _, n) = log_p_x0.dims3()?;
    let purity = log_p_x0.max(1)?.exp()?.clamp(0f32, 1f32)?; // (B, N)
    let (score, candidates_from) = match prior.rule {
        PriorRule::Random => (purity.ones_like()?, log_p_x0.clone()),
        PriorRule::Purity { prior_weight } => {
            let score = purity.broadcast_div(&(purity.max_keepdim(D::Minus1)? + 1e-10)?)?;
            let sharpened = if prior_weight > 0.0 {
                let factor = (score.affine(prior_weight, 1.0)?).unsqueeze(1)?;
                log_normalise(&log_p_x0.broadcast_mul(&factor)?)?.clamp(LOG_PROB_FLOOR, 0f32)?
            } else {
                log_p_x0.clone()
            };
            (score, sharpened)
        }
    };
    let candidates = gumbel_argmax(&candidates_from, noise)?.to_vec2::<u32>()?;
    let mut weights = score.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let mut tokens = x_t.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    let mut unmasked = vec![0; b];
    for i in 0..b {
        if weights[i].iter().sum::<f64>() < 1e-6 {
            weights[i].iter_mut().for_each(|w| *w += 1.0);
        }
        let masked: Vec<usize> = (0..n).filter(|&p| tokens[i][p] == mask_index).collect();
        for p in 0..n {
            if tokens[i][p] != mask_index {
                weights[i][p] = 0.0;
            }
        }
        let mut k = budget[i].min(prior.max_per_call);
        if budget[i] - k == 1 {
            k += 1;
        }
        let k = k.min(masked.len());
        let picks = noise.uniform(k)?;
        for u in picks {
            let total: f64 = weights[i].iter().sum();
            let mut target = u * total;
            let Some(mut chosen) = masked.iter().rev().copied().find(|&p| weights[i][p] > 0.0)
            else {
                break;
            };
            for &p in &masked {
                if weights[i][p] <= 0.0 {
                    continue;
                }
                if target < weights[i][p] {
                    chosen = p;
                    break;
                }
                target -= weights[i][p];
            }
            tokens[i][chosen] = candidates[i][chosen];
            weights[i][chosen] = 0.0;
            unmasked[i] += 1;
        }
    }
    let flat: Vec<u32> = tokens.into_iter().flatten().collect();
    Ok((Tensor::from_vec(flat, (b, n), x_t.device())?, unmasked))
}
