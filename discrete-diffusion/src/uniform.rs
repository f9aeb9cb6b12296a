//! D3PM's uniform transition (Austin et al. 2021 §3; Hoogeboom et al.'s multinomial diffusion):
//! `Q_t = (1 - β_t) I + β_t/K · 11ᵀ` over `K` classes, no mask state. Cumulative:
//! `Q̄_t = ᾱ_t I + (1 - ᾱ_t)/K · 11ᵀ` with `ᾱ_t = Π (1 - β_s)`; stationary distribution uniform.

use crate::beta_schedule::{BetaChain, BetaFamily};
use crate::{BetaSchedule, Coefficients, Error, Result, Transition};

/// Uniform resampling over the `K` classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Uniform(BetaChain);

impl Uniform {
    /// A uniform chain over `num_classes` classes with the given β schedule.
    ///
    /// ```
    /// use discrete_diffusion::{BetaSchedule, Transition, Uniform};
    /// let u = Uniform::new(8, BetaSchedule::Cosine { num_timesteps: 50, offset: 0.008 }).unwrap();
    /// let c = u.cumulative(49);
    /// assert!((c.stay + 8.0 * c.replace - 1.0).abs() < 1e-12);
    /// ```
    pub fn new(num_classes: usize, schedule: BetaSchedule) -> Result<Self> {
        if num_classes < 2 {
            return Err(Error::InvalidSchedule(format!(
                "a uniform chain needs at least 2 classes, got {num_classes}"
            )));
        }
        Ok(Self(BetaChain::new(
            num_classes,
            schedule,
            BetaFamily::Uniform { num_classes },
        )?))
    }

    /// The schedule the chain was built from.
    pub fn schedule(&self) -> &BetaSchedule {
        &self.0.schedule
    }

    /// The per-step `β_t`.
    pub fn betas(&self) -> &[f64] {
        &self.0.betas
    }
}

impl Transition for Uniform {
    fn num_classes(&self) -> usize {
        self.0.num_classes
    }
    fn has_mask_state(&self) -> bool {
        false
    }
    fn num_timesteps(&self) -> usize {
        self.0.betas.len()
    }
    fn cumulative(&self, t: usize) -> Coefficients {
        self.span(None, t)
    }
    fn span(&self, from: Option<usize>, to: usize) -> Coefficients {
        let stay = self.0.stay(from, to);
        Coefficients {
            stay,
            replace: (1.0 - stay) / self.0.num_classes as f64,
            mask: 0.0,
        }
    }
}
