//! The settings of the samplers that resolve masked positions directly or correct the chain —
//! MaskGIT, Halton-MaskGIT, random order, ReMDM, threshold commits, entropy-bounded steps and
//! the predictor-corrector (`discrete-diffusion`'s `MaskGit`, `ThresholdCommit`,
//! `EntropyBounded`, `ForwardBackwardCorrector`) — as `vqd generate` and the server take them:
//! every field optional, a default per sampler, and a setting the chosen sampler would ignore
//! refused rather than recorded.

use discrete_diffusion::{
    EntropyBounded, ForwardBackwardCorrector, MaskGit, Remask, SamplingMethod, ThresholdCommit,
    UnmaskCurve, UnmaskOrder,
};
use serde::{Deserialize, Serialize};

use crate::options::SamplerChoice;
use crate::{Error, Result};

/// Model calls of the count-scheduled samplers when `--steps` is not given.
pub const DEFAULT_UNMASK_STEPS: usize = 16;
/// MaskGIT's published choice temperature.
pub const DEFAULT_CHOICE_TEMPERATURE: f64 = 4.5;
/// Commit threshold of the threshold sampler when none is given.
pub const DEFAULT_THRESHOLD: f64 = 0.9;
/// Entropy bound (nats) of the entropy-bounded sampler when none is given.
pub const DEFAULT_ENTROPY_BOUND: f64 = 1.0;
/// ReMDM's remasking rate when none is given.
pub const DEFAULT_REMASK: f64 = 0.05;

/// Optional settings of the newer samplers (see the module docs); `None` = the sampler's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerSettings {
    /// Mask schedule of maskgit / halton / random-order / remdm (default cosine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmask_schedule: Option<UnmaskCurve>,
    /// Temperature of the committed candidates (1 = `p̂`, 0 = argmax; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// MaskGIT's choice temperature, annealed to 0 (default 4.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_temperature: Option<f64>,
    /// Commit threshold of the threshold sampler (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Edit committed tokens when another class reaches this probability (threshold sampler;
    /// default: no editing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_threshold: Option<f64>,
    /// Entropy bound γ in nats (entropy-bounded sampler; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy_bound: Option<f64>,
    /// ReMDM's remasking rate η (remdm; default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remask: Option<f64>,
    /// Corrector calls after each corrected step (predictor-corrector; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrector_steps: Option<usize>,
    /// How many of the last predictor steps are corrected (predictor-corrector; default half).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_steps: Option<usize>,
}

impl SamplerSettings {
    /// Whether every setting is left at its default.
    pub fn is_empty(&self) -> bool {
        *self == SamplerSettings::default()
    }

    /// Refuses a setting `sampler` does not use, naming its flag.
    pub fn refuse_ineffective(&self, sampler: SamplerChoice) -> Result<()> {
        use SamplerChoice as S;
        let count_scheduled = matches!(sampler, S::MaskGit | S::Halton | S::RandomOrder | S::Remdm);
        let uses_temperature =
            count_scheduled || matches!(sampler, S::Threshold | S::EntropyBounded);
        let checks: [(&str, bool, bool); 9] = [
            (
                "--unmask-schedule",
                self.unmask_schedule.is_some(),
                count_scheduled,
            ),
            (
                "--temperature",
                self.temperature.is_some(),
                uses_temperature,
            ),
            (
                "--choice-temperature",
                self.choice_temperature.is_some(),
                sampler == S::MaskGit,
            ),
            (
                "--threshold",
                self.threshold.is_some(),
                sampler == S::Threshold,
            ),
            (
                "--edit-threshold",
                self.edit_threshold.is_some(),
                sampler == S::Threshold,
            ),
            (
                "--entropy-bound",
                self.entropy_bound.is_some(),
                sampler == S::EntropyBounded,
            ),
            ("--remask", self.remask.is_some(), sampler == S::Remdm),
            (
                "--corrector-steps",
                self.corrector_steps.is_some(),
                sampler == S::PredictorCorrector,
            ),
            (
                "--corrected-steps",
                self.corrected_steps.is_some(),
                sampler == S::PredictorCorrector,
            ),
        ];
        for (flag, given, used) in checks {
            if given && !used {
                return Err(Error::InvalidOption(format!(
                    "{flag} has no effect with the {} sampler",
                    sampler.name()
                )));
            }
        }
        Ok(())
    }

    /// The `discrete-diffusion` method for `sampler` with `steps` model calls (count-scheduled
    /// samplers; default [`DEFAULT_UNMASK_STEPS`]) or predictor steps (predictor-corrector;
    /// default the chain's `num_timesteps`); `None` for the samplers these settings do not
    /// describe.
    pub fn method(
        &self,
        sampler: SamplerChoice,
        steps: Option<usize>,
        num_timesteps: usize,
    ) -> Option<SamplingMethod> {
        use SamplerChoice as S;
        let unmask_steps = steps.unwrap_or(DEFAULT_UNMASK_STEPS);
        let count_scheduled = |order: UnmaskOrder, remask: Option<Remask>| {
            SamplingMethod::MaskGit(MaskGit {
                steps: unmask_steps,
                curve: self.unmask_schedule.unwrap_or_default(),
                order,
                temperature: self.temperature.unwrap_or(1.0),
                remask,
            })
        };
        Some(match sampler {
            S::MaskGit => count_scheduled(
                UnmaskOrder::Confidence {
                    choice_temperature: self
                        .choice_temperature
                        .unwrap_or(DEFAULT_CHOICE_TEMPERATURE),
                },
                None,
            ),
            S::Halton => count_scheduled(UnmaskOrder::Halton, None),
            S::RandomOrder => count_scheduled(UnmaskOrder::Random, None),
            S::Remdm => count_scheduled(
                UnmaskOrder::Random,
                Some(Remask::throughout(self.remask.unwrap_or(DEFAULT_REMASK))),
            ),
            S::Threshold => SamplingMethod::ThresholdCommit(ThresholdCommit {
                threshold: self.threshold.unwrap_or(DEFAULT_THRESHOLD),
                edit_threshold: self.edit_threshold,
                temperature: self.temperature.unwrap_or(1.0),
            }),
            S::EntropyBounded => SamplingMethod::EntropyBounded(EntropyBounded {
                bound: self.entropy_bound.unwrap_or(DEFAULT_ENTROPY_BOUND),
                temperature: self.temperature.unwrap_or(1.0),
            }),
            S::FirstHitting => SamplingMethod::FirstHitting,
            S::PredictorCorrector => SamplingMethod::PredictorCorrector(ForwardBackwardCorrector {
                per_step: self.corrector_steps.unwrap_or(1),
                last_steps: self
                    .corrected_steps
                    .unwrap_or_else(|| steps.unwrap_or(num_timesteps).div_ceil(2))
                    .max(1),
            }),
            _ => return None,
        })
    }

    /// Checks the values (ranges) for `sampler`.
    pub fn validate(
        &self,
        sampler: SamplerChoice,
        steps: Option<usize>,
        num_timesteps: usize,
    ) -> Result<()> {
        self.refuse_ineffective(sampler)?;
        if let Some(m) = self.method(sampler, steps, num_timesteps) {
            m.validate()
                .map_err(|e| Error::InvalidOption(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_the_sampler_ignores_are_refused() {
        let s = SamplerSettings {
            threshold: Some(0.5),
            ..Default::default()
        };
        let err = s
            .validate(SamplerChoice::Halton, None, 100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--threshold has no effect with the halton sampler"),
            "{err}"
        );
        assert!(s.validate(SamplerChoice::Threshold, None, 100).is_ok());
        let bad = SamplerSettings {
            threshold: Some(2.0),
            ..Default::default()
        };
        assert!(bad.validate(SamplerChoice::Threshold, None, 100).is_err());
        let t = SamplerSettings {
            temperature: Some(0.5),
            ..Default::default()
        };
        assert!(t.validate(SamplerChoice::FirstHitting, None, 100).is_err());
        assert!(t.validate(SamplerChoice::Strided, None, 100).is_err());
        assert!(t.validate(SamplerChoice::MaskGit, Some(8), 100).is_ok());
    }

    #[test]
    fn defaults_match_the_published_settings() {
        let m = SamplerSettings::default()
            .method(SamplerChoice::MaskGit, None, 100)
            .unwrap();
        assert_eq!(
            m,
            SamplingMethod::MaskGit(MaskGit {
                steps: DEFAULT_UNMASK_STEPS,
                ..MaskGit::confidence(DEFAULT_UNMASK_STEPS)
            })
        );
        assert!(
            SamplerSettings::default()
                .method(SamplerChoice::Full, None, 100)
                .is_none()
        );
    }
}
