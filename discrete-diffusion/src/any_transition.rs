//! [`AnyTransition`]: a runtime choice among the three families (for configs and sweeps), and
//! its serde description [`TransitionConfig`].

use serde::{Deserialize, Serialize};

use crate::{
    Absorbing, BetaSchedule, Coefficients, MaskAndReplace, Result, Transition, Uniform,
    VqDiffusionSchedule,
};

/// One of the three transition families, chosen at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyTransition {
    /// D3PM uniform.
    Uniform(Uniform),
    /// D3PM absorbing.
    Absorbing(Absorbing),
    /// VQ-Diffusion mask-and-replace.
    MaskAndReplace(MaskAndReplace),
}

/// A serializable description of a transition (what experiment configs store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum TransitionConfig {
    /// [`Uniform`] with a β schedule.
    Uniform {
        /// `K`.
        num_classes: usize,
        /// The schedule.
        schedule: BetaSchedule,
    },
    /// [`Absorbing`] with a β schedule.
    Absorbing {
        /// `K`.
        num_classes: usize,
        /// The schedule.
        schedule: BetaSchedule,
    },
    /// [`MaskAndReplace`] with VQ-Diffusion's linear schedule.
    MaskAndReplace {
        /// `K`.
        num_classes: usize,
        /// The schedule.
        schedule: VqDiffusionSchedule,
    },
    /// [`MaskAndReplace::from_final`].
    MaskAndReplaceFinal {
        /// `K`.
        num_classes: usize,
        /// `T`.
        num_timesteps: usize,
        /// Final mask rate `γ̄_T`.
        gamma_bar_final: f64,
        /// Final replace mass `K β̄_T`.
        k_beta_bar_final: f64,
    },
}

impl TransitionConfig {
    /// Builds the transition.
    pub fn build(&self) -> Result<AnyTransition> {
        Ok(match self {
            TransitionConfig::Uniform {
                num_classes,
                schedule,
            } => AnyTransition::Uniform(Uniform::new(*num_classes, schedule.clone())?),
            TransitionConfig::Absorbing {
                num_classes,
                schedule,
            } => AnyTransition::Absorbing(Absorbing::new(*num_classes, schedule.clone())?),
            TransitionConfig::MaskAndReplace {
                num_classes,
                schedule,
            } => AnyTransition::MaskAndReplace(MaskAndReplace::new(*num_classes, schedule)?),
            TransitionConfig::MaskAndReplaceFinal {
                num_classes,
                num_timesteps,
                gamma_bar_final,
                k_beta_bar_final,
            } => AnyTransition::MaskAndReplace(MaskAndReplace::from_final(
                *num_classes,
                *num_timesteps,
                *gamma_bar_final,
                *k_beta_bar_final,
            )?),
        })
    }
}

impl AnyTransition {
    fn inner(&self) -> &dyn Transition {
        match self {
            AnyTransition::Uniform(t) => t,
            AnyTransition::Absorbing(t) => t,
            AnyTransition::MaskAndReplace(t) => t,
        }
    }
}

impl Transition for AnyTransition {
    fn num_classes(&self) -> usize {
        self.inner().num_classes()
    }
    fn has_mask_state(&self) -> bool {
        self.inner().has_mask_state()
    }
    fn num_timesteps(&self) -> usize {
        self.inner().num_timesteps()
    }
    fn cumulative(&self, t: usize) -> Coefficients {
        self.inner().cumulative(t)
    }
    fn span(&self, from: Option<usize>, to: usize) -> Coefficients {
        self.inner().span(from, to)
    }
}
