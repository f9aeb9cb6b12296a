//! Which timesteps a sampler visits and which posterior it uses between them.
//!
//! * [`TimestepPlan::Full`]: `t = T-1, …, 0`, one exact step each (VQ-Diffusion v1, diffusers
//!   with `num_inference_steps = T`).
//! * [`TimestepPlan::LastSteps`]: diffusers' `num_inference_steps = S < T` behaviour: it runs only
//!   the **last** S steps of the chain (`t = S-1, …, 0`) starting from an all-mask state
//!   (docs/reference-behaviour.md §2.6) — not a strided sampler; kept for compatibility.
//! * [`TimestepPlan::Strided`]: S model calls at evenly spaced timesteps, each followed by the
//!   exact multi-step posterior `q(x_{t-Δ} | x_t, x̃_0)` (paper §4.3 fast inference done right).
//! * [`TimestepPlan::SampleFast`]: the original repository's `sample_fast` with `infer_speed = s`:
//!   model at `t = T-1, T-1-s, …` (plus 0), but the *one-step* posterior evaluated at
//!   `t' = t - (s-1)` (docs/reference-behaviour.md §6.4) — an approximation, kept so the two can be compared.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A sampling schedule over timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "steps", rename_all = "snake_case")]
pub enum TimestepPlan {
    /// All T steps.
    Full,
    /// diffusers' truncated chain: only the last S steps.
    LastSteps(usize),
    /// S model calls with exact Δ-step posteriors.
    Strided(usize),
    /// The original `sample_fast` with `infer_speed` = the given value (≥ 1).
    SampleFast(usize),
}

/// What the sampler does after a model call at `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PosteriorRule {
    /// Sample `x_0` directly from `p̂(x_0 | x_t)` (the last step).
    ToData,
    /// Exact posterior from `t` to the earlier state `to`.
    Exact {
        /// The target timestep.
        to: usize,
    },
    /// One-step posterior computed as if `x` were at `at` (lands at `at - 1`; `sample_fast`).
    SingleStepAt {
        /// The timestep used for the posterior.
        at: usize,
    },
}

/// One model call of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedStep {
    /// The timestep the denoiser is evaluated at.
    pub t: usize,
    /// The posterior that follows.
    pub rule: PosteriorRule,
}

impl TimestepPlan {
    /// The model calls of this plan for a chain of `num_timesteps` steps.
    pub fn steps(&self, num_timesteps: usize) -> Result<Vec<PlannedStep>> {
        let big_t = num_timesteps;
        let single = |t: usize| PlannedStep {
            t,
            rule: match t {
                0 => PosteriorRule::ToData,
                _ => PosteriorRule::Exact { to: t - 1 },
            },
        };
        let check = |s: usize, what: &str| {
            if s == 0 || s > big_t {
                Err(Error::InvalidSetting(format!(
                    "{what} must be between 1 and the {big_t} steps the model was trained with, got {s}"
                )))
            } else {
                Ok(())
            }
        };
        Ok(match *self {
            TimestepPlan::Full => (0..big_t).rev().map(single).collect(),
            TimestepPlan::LastSteps(s) => {
                check(s, "the number of steps")?;
                (0..s).rev().map(single).collect()
            }
            TimestepPlan::Strided(s) => {
                check(s, "the number of strided steps")?;
                let times: Vec<usize> = (0..s).map(|i| (s - i) * big_t / s - 1).collect();
                times
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| PlannedStep {
                        t,
                        rule: match times.get(i + 1) {
                            Some(&to) => PosteriorRule::Exact { to },
                            None => PosteriorRule::ToData,
                        },
                    })
                    .collect()
            }
            TimestepPlan::SampleFast(speed) => {
                if speed == 0 {
                    return Err(Error::InvalidSetting(
                        "sample_fast speed must be ≥ 1".into(),
                    ));
                }
                let skip = speed - 1;
                let mut times: Vec<usize> = (0..big_t).rev().step_by(skip + 1).collect();
                if times.last() != Some(&0) {
                    times.push(0);
                }
                times
                    .into_iter()
                    .map(|t| {
                        let at = if t > skip { t - skip } else { t };
                        PlannedStep {
                            t,
                            rule: if at == 0 {
                                PosteriorRule::ToData
                            } else {
                                PosteriorRule::SingleStepAt { at }
                            },
                        }
                    })
                    .collect()
            }
        })
    }

    /// The model calls of this plan on the first `start + 1` timesteps of a chain of
    /// `num_timesteps` (a reverse process started at `x_start` instead of `x_{T−1}`: partial
    /// noising and editing). A plan asking for more calls than there are steps gets one call per
    /// step.
    pub fn steps_from(&self, num_timesteps: usize, start: usize) -> Result<Vec<PlannedStep>> {
        if start >= num_timesteps {
            return Err(Error::InvalidSetting(format!(
                "the start timestep must be below the {num_timesteps} steps of the chain, got {start}"
            )));
        }
        let len = start + 1;
        let plan = match *self {
            TimestepPlan::LastSteps(s) => TimestepPlan::LastSteps(s.min(len)),
            TimestepPlan::Strided(s) => TimestepPlan::Strided(s.min(len)),
            other => other,
        };
        // Every plan is defined by the chain length alone, and a chain's first `len` steps are a
        // chain of length `len` with the same tables.
        plan.steps(len)
    }
}
