//! VQ-Diffusion's mask-and-replace transition (Gu et al. 2022, §4.1, Eq. 7–8): each real token
//! stays with probability `α_t`, is resampled uniformly over the `K` classes with probability
//! `β_t` per class, or is masked with probability `γ_t` (`α_t + K β_t + γ_t = 1`); the mask
//! (index `K`) is absorbing. The cumulative matrix has the same form with `(ᾱ_t, β̄_t, γ̄_t)`.
//!
//! Step coefficients follow diffusers exactly (docs/reference-behaviour.md §2.1): with `ᾱ_ext = [1, ᾱ_0..]` and
//! `γ̄_ext = [0, γ̄_0..]`, `α_t = ᾱ_ext[t+1]/ᾱ_ext[t]`, `γ_t = 1 - (1-γ̄_ext[t+1])/(1-γ̄_ext[t])`,
//! `β_t = (1 - α_t - γ_t)/K`, all in f64. Multi-step spans use the same ratios between any two
//! steps, which makes the strided posterior exact.

use crate::{Coefficients, Error, Result, Transition, VqDiffusionSchedule};

/// Mask-and-replace diffusion over `K` real classes plus a mask (index `K`).
#[derive(Debug, Clone, PartialEq)]
pub struct MaskAndReplace {
    num_classes: usize,
    alpha_bar: Vec<f64>,
    gamma_bar: Vec<f64>,
}

impl MaskAndReplace {
    /// From VQ-Diffusion's linear schedule (e.g. a diffusers `scheduler_config.json`, whose
    /// `num_vec_classes` must then equal `num_classes + 1`).
    pub fn new(num_classes: usize, schedule: &VqDiffusionSchedule) -> Result<Self> {
        schedule.validate()?;
        if let Some(v) = schedule.num_vec_classes
            && v != num_classes + 1
        {
            return Err(Error::InvalidSchedule(format!(
                "scheduler num_vec_classes = {v} but the chain has {num_classes} real classes + mask = {}",
                num_classes + 1
            )));
        }
        Self::from_cumulative(num_classes, schedule.alpha_bar(), schedule.gamma_bar())
    }

    /// From a diffusers scheduler config alone (`num_vec_classes` gives `K + 1`).
    pub fn from_scheduler_config(schedule: &VqDiffusionSchedule) -> Result<Self> {
        let classes = schedule.num_vec_classes.ok_or_else(|| {
            Error::InvalidSchedule("scheduler config has no num_vec_classes".into())
        })?;
        if classes < 2 {
            return Err(Error::InvalidSchedule(format!(
                "num_vec_classes = {classes} < 2"
            )));
        }
        Self::new(classes - 1, schedule)
    }

    /// The released constants (diffusers defaults and `configs/ithq.yaml`: `ᾱ 0.99999 → 9e-6`,
    /// `γ̄ 9e-6 → 0.99999`): cumulative replace mass 1e-6, i.e. effectively mask-only.
    ///
    /// ```
    /// use discrete_diffusion::{MaskAndReplace, Transition};
    /// let mr = MaskAndReplace::released(4096, 100).unwrap();
    /// let c = mr.cumulative(50);
    /// assert!((4096.0 * c.replace - 1e-6).abs() < 1e-9);
    /// ```
    pub fn released(num_classes: usize, num_timesteps: usize) -> Result<Self> {
        Self::new(num_classes, &VqDiffusionSchedule::released(num_timesteps))
    }

    /// The paper's mask-and-replace setting: `γ̄_T = 0.9`, `K β̄_T = 0.1`, linear in t.
    pub fn paper(num_classes: usize, num_timesteps: usize) -> Result<Self> {
        Self::from_final(num_classes, num_timesteps, 0.9, 0.1)
    }

    /// A linear schedule ending at mask probability `gamma_bar_final` (the paper's `M`) and
    /// replace mass `k_beta_bar_final` at the last step: the chain of
    /// [`VqDiffusionSchedule::from_final`] (the one builder of a chain from its final rates).
    pub fn from_final(
        num_classes: usize,
        num_timesteps: usize,
        gamma_bar_final: f64,
        k_beta_bar_final: f64,
    ) -> Result<Self> {
        let schedule = VqDiffusionSchedule::from_final(
            None,
            num_timesteps,
            gamma_bar_final,
            k_beta_bar_final,
        )?;
        Self::new(num_classes, &schedule)
    }

    /// From user-given cumulative arrays `ᾱ[t]`, `γ̄[t]`, `t ∈ 0..T`.
    pub fn from_cumulative(
        num_classes: usize,
        alpha_bar: Vec<f64>,
        gamma_bar: Vec<f64>,
    ) -> Result<Self> {
        let bad = |m: String| Err(Error::InvalidSchedule(m));
        if num_classes < 1 {
            return bad("mask-and-replace needs at least one real class".into());
        }
        if alpha_bar.len() != gamma_bar.len() || alpha_bar.is_empty() {
            return bad(format!(
                "alpha_bar ({}) and gamma_bar ({}) must have the same, non-zero length",
                alpha_bar.len(),
                gamma_bar.len()
            ));
        }
        let last = alpha_bar.len() - 1;
        for t in 0..=last {
            let (a, g) = (alpha_bar[t], gamma_bar[t]);
            if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&g) || a + g > 1.0 + 1e-12 {
                return bad(format!(
                    "at t = {t}: alpha_bar = {a}, gamma_bar = {g} are not valid"
                ));
            }
            if t < last && (a <= 0.0 || g >= 1.0) {
                return bad(format!(
                    "at t = {t} < T-1: alpha_bar must stay positive and gamma_bar below 1"
                ));
            }
            if t > 0 && (a > alpha_bar[t - 1] || g < gamma_bar[t - 1]) {
                return bad(format!(
                    "at t = {t}: alpha_bar must not increase nor gamma_bar decrease"
                ));
            }
        }
        let chain = Self {
            num_classes,
            alpha_bar,
            gamma_bar,
        };
        // Each step must itself be a transition: α_t + γ_t ≤ 1 (β_t ≥ 0), i.e. ᾱ/(1 - γ̄)
        // must not increase.
        for t in 0..=last {
            let step = chain.span(t.checked_sub(1), t);
            if step.stay + step.mask > 1.0 + 1e-9 {
                return bad(format!(
                    "step {t} would need a negative replace probability (alpha_t = {}, gamma_t = {}): \
                     alpha_bar / (1 - gamma_bar) must not increase",
                    step.stay, step.mask
                ));
            }
        }
        Ok(chain)
    }

    /// `ᾱ[t]`, t ∈ 0..T.
    pub fn alpha_bar(&self) -> &[f64] {
        &self.alpha_bar
    }

    /// `γ̄[t]`, t ∈ 0..T.
    pub fn gamma_bar(&self) -> &[f64] {
        &self.gamma_bar
    }
}

impl Transition for MaskAndReplace {
    fn num_classes(&self) -> usize {
        self.num_classes
    }
    fn has_mask_state(&self) -> bool {
        true
    }
    fn num_timesteps(&self) -> usize {
        self.alpha_bar.len()
    }
    fn cumulative(&self, t: usize) -> Coefficients {
        let (a, g) = (self.alpha_bar[t], self.gamma_bar[t]);
        Coefficients {
            stay: a,
            replace: ((1.0 - a - g) / self.num_classes as f64).max(0.0),
            mask: g,
        }
    }
    fn span(&self, from: Option<usize>, to: usize) -> Coefficients {
        let (a_from, g_from) = from.map_or((1.0, 0.0), |s| (self.alpha_bar[s], self.gamma_bar[s]));
        let stay = self.alpha_bar[to] / a_from;
        let mask = 1.0 - (1.0 - self.gamma_bar[to]) / (1.0 - g_from);
        Coefficients {
            stay,
            replace: ((1.0 - stay - mask) / self.num_classes as f64).max(0.0),
            mask,
        }
    }
}
