//! Confidence-threshold commits with optional editing ([`ThresholdCommit`]; Fast-dLLM §3.3,
//! LLaDA-style editing); the math is on [`ThresholdCommit`].

use serde::{Deserialize, Serialize};

use crate::unmasking::{RowContext, UnmaskPolicy, check_temperature};
use crate::{Error, NoiseSource, Result};

/// Confidence-threshold commits with optional editing of committed tokens: the parallel decoding
/// rule of Fast-dLLM (Wu et al. 2025, "Fast-dLLM", §3.3: commit every masked position whose
/// top probability exceeds a threshold, at least one per call) and the token editing of
/// LLaDA-style block refinement (a committed token is replaced when the model has become
/// confident of another value, "LLaDA 2.0"-style editing; diffusers' text stack calls it
/// `editing_threshold`).
///
/// Each call commits every masked position with `max_c p̂(c) ≥ threshold` to its candidate
/// (drawn at `temperature`; at 0 the argmax), or, if there is none, the single most confident
/// masked position. With an `edit_threshold`, every token committed at an earlier call whose
/// most probable class is now another one, with probability `≥ edit_threshold`, is changed to
/// it. The run takes at most as many calls as there are masked positions, and one call when
/// the model is sure of everything. Committing several positions from their marginals at once
/// ignores their dependence (the factorisation error every parallel sampler makes); a high
/// threshold commits together only positions that are nearly determined, where the error is
/// small. On mask-and-replace, editing is the committed tokens' only way to change, the role
/// the replace mass plays in the full posterior sampler (see [`crate::SamplingMethod`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCommit {
    /// Commit a masked position when its top probability reaches this (`(0, 1]`).
    pub threshold: f64,
    /// Change a committed token to another class whose probability reaches this (`(0, 1]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_threshold: Option<f64>,
    /// Temperature of the committed candidates (1 = `p̂`, 0 = argmax).
    #[serde(default = "one")]
    pub temperature: f64,
}

fn one() -> f64 {
    1.0
}

impl ThresholdCommit {
    /// Commits at `threshold`, no editing, candidates from `p̂`.
    pub fn new(threshold: f64) -> Self {
        Self {
            threshold,
            edit_threshold: None,
            temperature: 1.0,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("threshold", Some(self.threshold)),
            ("edit threshold", self.edit_threshold),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0 && v <= 1.0)
            {
                return Err(Error::InvalidSetting(format!(
                    "the {name} must lie in (0, 1], got {v}"
                )));
            }
        }
        check_temperature("temperature", self.temperature)
    }
}

impl UnmaskPolicy for ThresholdCommit {
    fn temperature(&self) -> f64 {
        self.temperature
    }

    fn planned_calls(&self, masked: usize) -> usize {
        masked
    }

    fn update(&mut self, ctx: &RowContext, row: &mut [u32], _: &mut dyn NoiseSource) -> Result<()> {
        let masked = ctx.masked(row);
        let committed = ctx.committed(row);
        let log_threshold = self.threshold.ln() as f32;
        let mut most_confident: Option<(f32, usize)> = None;
        let mut any = false;
        for &p in &masked {
            let (_, best) = ctx.view.best(ctx.image, p);
            if best >= log_threshold {
                row[p] = ctx.view.candidate(ctx.image, p);
                any = true;
            }
            if most_confident.is_none_or(|(b, _)| best > b) {
                most_confident = Some((best, p));
            }
        }
        if let (false, Some((_, p))) = (any, most_confident) {
            row[p] = ctx.view.candidate(ctx.image, p);
        }
        if let Some(edit) = self.edit_threshold {
            let log_edit = edit.ln() as f32;
            for p in committed {
                let (class, best) = ctx.view.best(ctx.image, p);
                if class != row[p] && best >= log_edit {
                    row[p] = class;
                }
            }
        }
        Ok(())
    }
}
