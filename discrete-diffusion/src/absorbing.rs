//! D3PM's absorbing transition (Austin et al. 2021 §3; masked diffusion): stay with probability
//! `1 - β_t`, else jump to `[MASK]` (index `K`), which never leaves. Cumulative: stay `ᾱ_t =
//! Π (1 - β_s)`, mask `1 - ᾱ_t`, no replacement. Stationary distribution: all mass on the mask.

use crate::beta_schedule::{BetaChain, BetaFamily};
use crate::{BetaSchedule, Coefficients, Error, Result, Transition};

/// Absorbing-state ("masked") diffusion over `K` classes plus a mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Absorbing(BetaChain);

impl Absorbing {
    /// An absorbing chain over `num_classes` real classes (mask index = `num_classes`).
    ///
    /// ```
    /// use discrete_diffusion::{Absorbing, BetaSchedule, Transition};
    /// let a = Absorbing::new(16, BetaSchedule::MutualInformation { num_timesteps: 10 }).unwrap();
    /// assert_eq!(a.mask_index(), Some(16));
    /// // The mutual-information schedule masks everything by the last step.
    /// assert_eq!(a.cumulative(9).mask, 1.0);
    /// ```
    pub fn new(num_classes: usize, schedule: BetaSchedule) -> Result<Self> {
        if num_classes < 1 {
            return Err(Error::InvalidSchedule(
                "an absorbing chain needs at least 1 class".into(),
            ));
        }
        Ok(Self(BetaChain::new(
            num_classes,
            schedule,
            BetaFamily::Absorbing,
        )?))
    }

    /// The schedule the chain was built from.
    pub fn schedule(&self) -> &BetaSchedule {
        &self.0.schedule
    }

    /// The per-step `β_t` (probability of masking at step t).
    pub fn betas(&self) -> &[f64] {
        &self.0.betas
    }
}

impl Transition for Absorbing {
    fn num_classes(&self) -> usize {
        self.0.num_classes
    }
    fn has_mask_state(&self) -> bool {
        true
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
            replace: 0.0,
            mask: 1.0 - stay,
        }
    }
}
