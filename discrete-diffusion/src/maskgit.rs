//! Count-scheduled unmasking ([`MaskGit`]: MaskGIT, Halton-MaskGIT, random order, ReMDM
//! remasking) and its schedules; the sources and the math are on [`MaskGit`].

use serde::{Deserialize, Serialize};

use crate::halton::halton_rank;
use crate::unmasking::{RowContext, UnmaskPolicy, check_temperature, gumbel_from_uniform};
use crate::{Error, NoiseSource, Result};

/// A mask schedule `γ(r)`: the fraction still masked after a fraction `r` of the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmaskCurve {
    /// `cos(πr/2)`: MaskGIT's default (few tokens first, many at the end).
    #[default]
    Cosine,
    /// `1 − r`: the same number each step.
    Linear,
    /// `(2/π)·arccos r`: many tokens first, few at the end.
    Arccos,
}

impl UnmaskCurve {
    /// `γ(r)` for `r ∈ [0, 1]`.
    pub fn masked_fraction(self, r: f64) -> f64 {
        let r = r.clamp(0.0, 1.0);
        match self {
            UnmaskCurve::Cosine => (std::f64::consts::FRAC_PI_2 * r).cos(),
            UnmaskCurve::Linear => 1.0 - r,
            UnmaskCurve::Arccos => r.acos() / std::f64::consts::FRAC_PI_2,
        }
        .clamp(0.0, 1.0)
    }

    /// The curve's name (`cosine`, `linear`, `arccos`).
    pub fn name(self) -> &'static str {
        match self {
            UnmaskCurve::Cosine => "cosine",
            UnmaskCurve::Linear => "linear",
            UnmaskCurve::Arccos => "arccos",
        }
    }
}

impl std::str::FromStr for UnmaskCurve {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cosine" => Ok(UnmaskCurve::Cosine),
            "linear" => Ok(UnmaskCurve::Linear),
            "arccos" => Ok(UnmaskCurve::Arccos),
            _ => Err(Error::InvalidSetting(format!(
                "unknown unmasking schedule {s:?} (valid: cosine, linear, arccos)"
            ))),
        }
    }
}

/// Which masked positions a step commits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmaskOrder {
    /// MaskGIT: the most confident candidates, with Gumbel noise of the choice temperature.
    Confidence {
        /// `τ_c` (MaskGIT's `choice_temperature`; 0 = pure confidence), annealed to 0.
        choice_temperature: f64,
    },
    /// Halton-MaskGIT: the 2-D Halton sequence over the token grid.
    #[default]
    Halton,
    /// Uniformly random positions.
    Random,
}

/// ReMDM remasking of committed tokens (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Remask {
    /// `η`: the fraction of committed tokens masked again at each step of the window.
    pub eta: f64,
    /// The window `[from, to)`, as fractions of the run's steps (ReMDM-loop uses a window in
    /// the middle; `[0, 1)` remasks throughout).
    pub from: f64,
    /// End of the window.
    pub to: f64,
}

impl Remask {
    /// `η` over the whole run.
    pub fn throughout(eta: f64) -> Self {
        Self {
            eta,
            from: 0.0,
            to: 1.0,
        }
    }
}

/// Count-scheduled unmasking: MaskGIT (Chang et al. 2022, "MaskGIT: Masked Generative Image
/// Transformer", §3.2 iterative decoding, Eq. 3 and the mask schedules of §3.3), its Halton
/// order (Besnier et al. 2025, see [`crate::halton_rank`]), a random order (Improved VQ-Diffusion's
/// rule 1 with MaskGIT's schedule), and ReMDM remasking (Wang et al. 2025, "Remasking discrete
/// diffusion models with inference-time scaling", §3, the `cap` schedule `σ_t = min(η, ·)`).
///
/// With `S` steps over the `M` positions masked at the start, step `j` (0-based) leaves
/// `⌊M·γ((j + 1)/S)⌋` positions masked — at least one fewer than before, none after the last —
/// where `γ` is the mask schedule: cosine `cos(πr/2)` (MaskGIT's choice), linear `1 − r`, or
/// arccos `(2/π)·arccos r`. Which positions are committed:
///
/// * [`UnmaskOrder::Confidence`]: MaskGIT's rule — every masked position draws a candidate from
///   `p̂` at `temperature`; the ones with the highest confidence `log p̂(candidate) +
///   τ_c·(1 − r)·g` (`g` a standard Gumbel draw, `τ_c` the choice temperature, annealed
///   linearly to zero over the run) are committed. Because the chosen positions depend on the
///   drawn values, this is biased even with a perfect denoiser (it favours confident tokens:
///   sharper, less diverse samples).
/// * [`UnmaskOrder::Halton`]: the next positions of the Halton sequence over the token grid.
/// * [`UnmaskOrder::Random`]: uniformly random masked positions.
///
/// The last two choose positions independently of the values, so with one position per call
/// and a perfect denoiser they sample the data distribution exactly.
///
/// **Remasking** ([`Remask`], ReMDM): while the run is inside the remasking window, each step
/// also masks again `r = min(⌊η·C⌉, m)` of the `C` tokens committed at earlier calls — the ones
/// the current prediction believes least (lowest `p̂` of their value; ReMDM's "conf" variant),
/// where `m` is the count the step leaves masked — and commits `r` more, so the schedule's
/// masked counts, and the number of model calls, are unchanged. `η` plays ReMDM's `η_cap`.
/// On a mask-and-replace chain this is the only way a committed token changes again, the role
/// the chain's replace mass plays in the full posterior sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskGit {
    /// Model calls `S` (fewer when fewer positions are masked).
    pub steps: usize,
    /// The mask schedule.
    #[serde(default)]
    pub curve: UnmaskCurve,
    /// Which positions each step commits.
    #[serde(default)]
    pub order: UnmaskOrder,
    /// Temperature of the candidates drawn from `p̂` (1 = `p̂` itself, 0 = its argmax).
    #[serde(default = "one")]
    pub temperature: f64,
    /// ReMDM remasking, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remask: Option<Remask>,
}

fn one() -> f64 {
    1.0
}

impl MaskGit {
    /// MaskGIT as published: cosine schedule, confidence order with choice temperature 4.5,
    /// candidates at temperature 1.
    pub fn confidence(steps: usize) -> Self {
        Self {
            steps,
            curve: UnmaskCurve::Cosine,
            order: UnmaskOrder::Confidence {
                choice_temperature: 4.5,
            },
            temperature: 1.0,
            remask: None,
        }
    }

    /// Halton-MaskGIT: cosine schedule, Halton order, temperature 1.
    pub fn halton(steps: usize) -> Self {
        Self {
            order: UnmaskOrder::Halton,
            ..Self::confidence(steps)
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::InvalidSetting(
                "the MaskGIT sampler needs at least 1 step".into(),
            ));
        }
        check_temperature("temperature", self.temperature)?;
        if let UnmaskOrder::Confidence { choice_temperature } = self.order {
            check_temperature("choice temperature", choice_temperature)?;
        }
        if let Some(r) = self.remask {
            if !(r.eta.is_finite() && (0.0..=1.0).contains(&r.eta)) {
                return Err(Error::InvalidSetting(format!(
                    "remasking eta must lie in [0, 1], got {}",
                    r.eta
                )));
            }
            if !(0.0 <= r.from && r.from <= r.to && r.to <= 1.0) {
                return Err(Error::InvalidSetting(format!(
                    "the remasking window [{}, {}) must lie within [0, 1]",
                    r.from, r.to
                )));
            }
        }
        Ok(())
    }

    /// Positions left masked after step `j` of a run that started with `masked` (see the
    /// module docs): strictly decreasing to 0 at step `min(S, masked) − 1`.
    pub fn masked_after(&self, j: usize, masked: usize) -> usize {
        let calls = self.steps.min(masked);
        let mut left = masked;
        for step in 0..=j {
            let target = (masked as f64
                * self
                    .curve
                    .masked_fraction((step + 1) as f64 / self.steps as f64))
            .floor() as usize;
            // At least one position per remaining call stays masked: the floor of a rounded
            // product (30 × (1 − 29/30) = 0.999…) must not end the run a call early.
            let floor = calls.saturating_sub(step + 1);
            left = if step + 1 >= calls {
                0
            } else {
                target.max(floor).min(left.saturating_sub(1))
            };
        }
        left
    }

    pub(crate) fn policy(&self, num_tokens: usize) -> MaskGitPolicy<'_> {
        MaskGitPolicy {
            config: self,
            rank: matches!(self.order, UnmaskOrder::Halton).then(|| halton_rank(num_tokens)),
        }
    }
}

pub(crate) struct MaskGitPolicy<'a> {
    config: &'a MaskGit,
    rank: Option<Vec<usize>>,
}

impl UnmaskPolicy for MaskGitPolicy<'_> {
    fn temperature(&self) -> f64 {
        self.config.temperature
    }

    fn planned_calls(&self, masked: usize) -> usize {
        self.config.steps.min(masked)
    }

    fn update(
        &mut self,
        ctx: &RowContext,
        row: &mut [u32],
        noise: &mut dyn NoiseSource,
    ) -> Result<()> {
        let cfg = self.config;
        let masked = ctx.masked(row);
        if masked.is_empty() {
            return Ok(());
        }
        let progress = ctx.call as f64 / cfg.steps as f64;
        let target = cfg
            .masked_after(ctx.call, ctx.masked_at_start)
            .min(masked.len() - 1);
        let committed = ctx.committed(row);
        let remask = match cfg.remask {
            Some(r) if progress >= r.from && progress < r.to => {
                ((r.eta * committed.len() as f64).round() as usize).min(target)
            }
            _ => 0,
        };
        let commit = masked.len() - target + remask;
        // Scores: higher = committed first.
        let scores: Vec<f64> = match cfg.order {
            UnmaskOrder::Confidence { choice_temperature } => {
                let g = noise.uniform(masked.len())?;
                masked
                    .iter()
                    .zip(g)
                    .map(|(&p, u)| {
                        let c = ctx.view.candidate(ctx.image, p);
                        ctx.view.log_p(ctx.image, c, p) as f64
                            + choice_temperature * (1.0 - progress) * gumbel_from_uniform(u)
                    })
                    .collect()
            }
            UnmaskOrder::Halton => {
                let rank = self.rank.as_ref().expect("built with the policy");
                masked.iter().map(|&p| -(rank[p] as f64)).collect()
            }
            UnmaskOrder::Random => noise.uniform(masked.len())?,
        };
        let mut order: Vec<usize> = (0..masked.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        for &j in order.iter().take(commit) {
            let p = masked[j];
            row[p] = ctx.view.candidate(ctx.image, p);
        }
        if remask > 0 {
            // The earlier commits the prediction believes least go back to the mask.
            let mut doubt: Vec<(f32, usize)> = committed
                .iter()
                .map(|&p| (ctx.view.log_p(ctx.image, row[p], p), p))
                .collect();
            doubt.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(_, p) in doubt.iter().take(remask) {
                row[p] = ctx.mask;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_schedule_reaches_zero_in_exactly_min_steps_masked_calls(
            steps in 1usize..40, masked in 1usize..300, curve in 0usize..3,
        ) {
            let curve = [UnmaskCurve::Cosine, UnmaskCurve::Linear, UnmaskCurve::Arccos][curve];
            let m = MaskGit { curve, ..MaskGit::halton(steps) };
            let mut before = masked;
            let calls = steps.min(masked);
            for j in 0..calls {
                let after = m.masked_after(j, masked);
                prop_assert!(after < before, "step {j}: {after} !< {before}");
                before = after;
            }
            prop_assert_eq!(before, 0);
        }

        #[test]
        fn curves_fall_from_one_to_zero(r in 0.0f64..1.0) {
            for curve in [UnmaskCurve::Cosine, UnmaskCurve::Linear, UnmaskCurve::Arccos] {
                prop_assert_eq!(curve.masked_fraction(0.0), 1.0);
                prop_assert!(curve.masked_fraction(1.0).abs() < 1e-12);
                let f = curve.masked_fraction(r);
                prop_assert!((0.0..=1.0).contains(&f));
                prop_assert!(curve.masked_fraction((r + 0.01).min(1.0)) <= f + 1e-12);
            }
        }
    }

    #[test]
    fn a_rounded_product_does_not_end_the_schedule_early() {
        // found by the property test above: 30 × (1 − 29/30) floors to 0 one call early
        let m = MaskGit {
            curve: UnmaskCurve::Linear,
            ..MaskGit::halton(30)
        };
        let left: Vec<usize> = (0..30).map(|j| m.masked_after(j, 30)).collect();
        assert_eq!(left, (0..30).rev().collect::<Vec<_>>());
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            MaskGit {
                steps: 0,
                ..MaskGit::halton(1)
            }
            .validate()
            .is_err()
        );
        assert!(
            MaskGit {
                temperature: -1.0,
                ..MaskGit::halton(4)
            }
            .validate()
            .is_err()
        );
        let remask = |eta, from, to| MaskGit {
            remask: Some(Remask { eta, from, to }),
            ..MaskGit::halton(4)
        };
        assert!(remask(1.5, 0.0, 1.0).validate().is_err());
        assert!(remask(0.1, 0.8, 0.2).validate().is_err());
        assert!(remask(0.1, 0.2, 0.8).validate().is_ok());
        assert!("square".parse::<UnmaskCurve>().is_err());
        assert_eq!(
            "arccos".parse::<UnmaskCurve>().unwrap(),
            UnmaskCurve::Arccos
        );
    }
}
