//! VQ-Diffusion's linear-cumulative schedule (docs/reference-behaviour.md §2.1; paper §4.1; diffusers
//! `VQDiffusionScheduler.__init__` / original `alpha_schedule`), and the serde form of a diffusers
//! `scheduler_config.json`.
//!
//! The cumulative stay probability `ᾱ` and mask probability `γ̄` are linear in the (0-based)
//! timestep, in f64, with numpy's operation order
//! `ᾱ[t] = t / (T - 1) · (ᾱ_end - ᾱ_start) + ᾱ_start`, and the same for `γ̄`. The released
//! constants (`ᾱ: 0.99999 → 9e-6`, `γ̄: 9e-6 → 0.99999`) leave a cumulative replace mass
//! `K·β̄ = 1 - ᾱ - γ̄ = 1e-6`: the released models are effectively mask-only.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The four constants of VQ-Diffusion's linear schedule and the chain length; deserializes a
/// diffusers `scheduler/scheduler_config.json` (`num_vec_classes` is kept, fields starting with
/// `_` are ignored, any other unknown field is an error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawVqDiffusionSchedule")]
pub struct VqDiffusionSchedule {
    /// Number of classes including the mask (diffusers' `num_vec_classes`; `K + 1`), if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_vec_classes: Option<usize>,
    /// `T`.
    pub num_train_timesteps: usize,
    /// `ᾱ` at t = 0.
    pub alpha_cum_start: f64,
    /// `ᾱ` at t = T - 1.
    pub alpha_cum_end: f64,
    /// `γ̄` at t = 0.
    pub gamma_cum_start: f64,
    /// `γ̄` at t = T - 1.
    pub gamma_cum_end: f64,
}

#[derive(Deserialize)]
struct RawVqDiffusionSchedule {
    num_vec_classes: Option<usize>,
    #[serde(default = "default_steps")]
    num_train_timesteps: usize,
    #[serde(default = "default_alpha_start")]
    alpha_cum_start: f64,
    #[serde(default = "default_small")]
    alpha_cum_end: f64,
    #[serde(default = "default_small")]
    gamma_cum_start: f64,
    #[serde(default = "default_alpha_start")]
    gamma_cum_end: f64,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

fn default_steps() -> usize {
    100
}
fn default_alpha_start() -> f64 {
    0.99999
}
fn default_small() -> f64 {
    0.000009
}

impl TryFrom<RawVqDiffusionSchedule> for VqDiffusionSchedule {
    type Error = String;
    fn try_from(raw: RawVqDiffusionSchedule) -> std::result::Result<Self, String> {
        let unknown: Vec<&String> = raw.other.keys().filter(|k| !k.starts_with('_')).collect();
        if !unknown.is_empty() {
            return Err(format!("unknown scheduler config field(s) {unknown:?}"));
        }
        if let Some(class) = raw.other.get("_class_name").and_then(|v| v.as_str())
            && class != "VQDiffusionScheduler"
        {
            return Err(format!(
                "_class_name is {class:?}, expected \"VQDiffusionScheduler\""
            ));
        }
        let s = VqDiffusionSchedule {
            num_vec_classes: raw.num_vec_classes,
            num_train_timesteps: raw.num_train_timesteps,
            alpha_cum_start: raw.alpha_cum_start,
            alpha_cum_end: raw.alpha_cum_end,
            gamma_cum_start: raw.gamma_cum_start,
            gamma_cum_end: raw.gamma_cum_end,
        };
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }
}

impl Default for VqDiffusionSchedule {
    fn default() -> Self {
        Self::released(100)
    }
}

/// The longest chain a schedule may describe (the papers use T = 100; every table of a chain
/// is `O(T)`, so the bound keeps a mistyped config from sizing an allocation).
pub const MAX_TIMESTEPS: usize = 100_000;

impl VqDiffusionSchedule {
    /// The constants shipped with diffusers and the original configs (`alpha1`).
    pub fn released(num_train_timesteps: usize) -> Self {
        Self {
            num_vec_classes: None,
            num_train_timesteps,
            alpha_cum_start: 0.99999,
            alpha_cum_end: 0.000009,
            gamma_cum_start: 0.000009,
            gamma_cum_end: 0.99999,
        }
    }

    /// A linear schedule over `num_train_timesteps` steps ending at mask probability
    /// `gamma_bar_final` (the paper's `M`) and replace mass `k_beta_bar_final` (so
    /// `ᾱ_T = 1 − γ̄_T − Kβ̄_T`), starting like the released schedule from `ᾱ = 0.99999`,
    /// `γ̄ = 9e-6`. At the two ends of the family the start is chosen so that the replace mass
    /// `Kβ̄_t = 1 − ᾱ_t − γ̄_t` never decreases (each step stays a transition): no masking at
    /// all when `γ̄_T < 9e-6` (the start is `γ̄_T`), and no replacement at all when
    /// `Kβ̄_T = 0` (the start is `1 − 0.99999`).
    pub fn from_final(
        num_vec_classes: Option<usize>,
        num_train_timesteps: usize,
        gamma_bar_final: f64,
        k_beta_bar_final: f64,
    ) -> Result<Self> {
        let alpha_end = 1.0 - gamma_bar_final - k_beta_bar_final;
        if !(-1e-12..=1.0).contains(&alpha_end) || gamma_bar_final < 0.0 || k_beta_bar_final < 0.0 {
            return Err(Error::InvalidSchedule(format!(
                "final mask rate {gamma_bar_final} and replace mass {k_beta_bar_final} must be \
                 non-negative and sum to at most 1"
            )));
        }
        const ALPHA_START: f64 = 0.99999;
        Ok(Self {
            num_vec_classes,
            num_train_timesteps,
            alpha_cum_start: ALPHA_START,
            alpha_cum_end: alpha_end.max(0.0),
            gamma_cum_start: if k_beta_bar_final <= 0.0 {
                1.0 - ALPHA_START
            } else {
                0.000009f64.min(gamma_bar_final)
            },
            gamma_cum_end: gamma_bar_final,
        })
    }

    /// Reads a diffusers `scheduler_config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Checks the constants describe probabilities with `ᾱ + γ̄ ≤ 1`.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidSchedule(m));
        if !(2..=MAX_TIMESTEPS).contains(&self.num_train_timesteps) {
            return bad(format!(
                "num_train_timesteps must be in [2, {MAX_TIMESTEPS}], got {}",
                self.num_train_timesteps
            ));
        }
        for (name, v) in [
            ("alpha_cum_start", self.alpha_cum_start),
            ("alpha_cum_end", self.alpha_cum_end),
            ("gamma_cum_start", self.gamma_cum_start),
            ("gamma_cum_end", self.gamma_cum_end),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} = {v} is not a probability"));
            }
        }
        for (a, g, at) in [
            (self.alpha_cum_start, self.gamma_cum_start, "start"),
            (self.alpha_cum_end, self.gamma_cum_end, "end"),
        ] {
            if a + g > 1.0 + 1e-12 {
                return bad(format!(
                    "alpha_cum_{at} + gamma_cum_{at} = {} exceeds 1",
                    a + g
                ));
            }
        }
        if self.alpha_cum_start <= 0.0 {
            return bad("alpha_cum_start must be positive".into());
        }
        if self.gamma_cum_end < self.gamma_cum_start || self.alpha_cum_end > self.alpha_cum_start {
            return bad("the schedule must corrupt more over time (alpha down, gamma up)".into());
        }
        Ok(())
    }

    /// `ᾱ[t]` for `t ∈ 0..T` (f64, numpy's `arange(T) / (T-1) * (end - start) + start`).
    pub fn alpha_bar(&self) -> Vec<f64> {
        linear(
            self.num_train_timesteps,
            self.alpha_cum_start,
            self.alpha_cum_end,
        )
    }

    /// `γ̄[t]` for `t ∈ 0..T`.
    pub fn gamma_bar(&self) -> Vec<f64> {
        linear(
            self.num_train_timesteps,
            self.gamma_cum_start,
            self.gamma_cum_end,
        )
    }
}

fn linear(steps: usize, start: f64, end: f64) -> Vec<f64> {
    let denominator = (steps - 1) as f64;
    (0..steps)
        .map(|t| t as f64 / denominator * (end - start) + start)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MaskAndReplace, Transition};

    #[test]
    fn chains_from_final_rates_build_across_the_whole_family() {
        // The paper's setting, the mask-only end (no replacement) and the replace-only end.
        for (m, k_beta) in [
            (0.9, 0.1),
            (0.9, 0.0),
            (0.5, 0.0),
            (1.0, 0.0),
            (0.0, 0.1),
            (4e-6, 0.1),
        ] {
            let s = VqDiffusionSchedule::from_final(None, 100, m, k_beta).unwrap();
            let chain = MaskAndReplace::new(16, &s)
                .unwrap_or_else(|e| panic!("M = {m}, Kβ̄ = {k_beta}: {e}"));
            let last = chain.cumulative(99);
            assert!((last.mask - m).abs() < 1e-9, "M = {m}");
            assert!((16.0 * last.replace - k_beta).abs() < 1e-9, "Kβ̄ = {k_beta}");
        }
        // The paper's setting starts exactly like the released constants.
        let paper = VqDiffusionSchedule::from_final(None, 100, 0.9, 0.1).unwrap();
        assert_eq!(paper.alpha_cum_start, 0.99999);
        assert_eq!(paper.gamma_cum_start, 0.000009);
        assert!(VqDiffusionSchedule::from_final(None, 100, 0.9, 0.2).is_err());
        assert!(VqDiffusionSchedule::from_final(None, 100, -0.1, 0.2).is_err());
    }
}
