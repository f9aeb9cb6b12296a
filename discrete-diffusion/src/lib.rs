//! # discrete-diffusion
//!
//! A small, exact library for diffusion over categorical tokens, on [candle](https://docs.rs/candle-core):
//! the forward corruption processes of D3PM (uniform, absorbing) and VQ-Diffusion
//! (mask-and-replace), their schedules, closed-form marginals and posteriors in log space, the
//! x₀-parameterised reverse step (one-step, exact multi-step "strided", and the original
//! `sample_fast` approximation), the VLB / auxiliary losses and ELBO, and samplers (Gumbel-max
//! with seeded or replayed noise, truncation, classifier-free guidance, Improved VQ-Diffusion's
//! purity prior).
//!
//! Everything follows the conventions of diffusers' `VQDiffusionScheduler` so results match it
//! to float precision: `K` real classes, the mask (when present) is class `K`; token ids are
//! `(B, N)` tensors; log-probabilities are `(B, classes, N)` f32 with the class axis at dim 1;
//! timesteps are 0-based (`t ∈ 0..T`, code index `t` = paper step `t + 1`); "zero" probabilities
//! are `ln(1e-30)` in log one-hot vectors and the samplers floor predictions at `-70`.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use discrete_diffusion::{MaskAndReplace, SeededNoise, Transition, log_one_hot};
//!
//! # fn main() -> discrete_diffusion::Result<()> {
//! let dev = Device::Cpu;
//! // VQ-Diffusion's released schedule over an 8-token codebook, 10 steps.
//! let mr = MaskAndReplace::released(8, 10)?;
//! let x0 = Tensor::new(&[[1u32, 5, 7, 2]], &dev)?;
//! let mut noise = SeededNoise::new(0);
//! let x_t = mr.q_sample(&x0, 6, &mut noise)?; // x_6 ~ q(x_6 | x_0)
//! // The true posterior q(x_5 | x_6, x_0): pass a one-hot "prediction".
//! let one_hot = log_one_hot(&x0, mr.num_states())?.narrow(1, 0, 8)?;
//! let log_post = mr.q_posterior(&one_hot, &x_t, 6)?; // (1, 9, 4)
//! let total = log_post.exp()?.sum(1)?; // each column sums to one
//! for s in total.flatten_all()?.to_vec1::<f32>()? {
//!     assert!((s - 1.0).abs() < 1e-5);
//! }
//! # Ok(())
//! # }
//! ```

mod absorbing;
mod any_transition;
mod beta_schedule;
mod coefficients;
mod corrector;
mod denoiser;
mod elbo;
mod entropy_bounded;
mod error;
mod fast_math;
mod first_hitting;
mod forward;
mod guidance;
mod guided_truncation;
mod halton;
mod host;
mod known_tokens;
mod log_space;
mod loss;
mod mask_and_replace;
mod maskgit;
mod noise;
mod parameterisation;
mod posterior;
mod posterior_kernel;
mod purity;
mod sampler;
mod shared_out;
mod tables;
mod template_world;
mod threshold_commit;
mod timestep_plan;
mod timestep_sampler;
mod transition;
mod truncation;
mod uniform;
mod unmasking;
mod vq_schedule;

#[cfg(test)]
mod dense_reference;
#[cfg(test)]
mod tests;

pub use absorbing::Absorbing;
pub use any_transition::{AnyTransition, TransitionConfig};
pub use beta_schedule::BetaSchedule;
pub use coefficients::{Coefficients, LogCoefficients, Timesteps};
pub use corrector::{ForwardBackwardCorrector, forward_step};
pub use denoiser::{ClassifierFreeGuidance, Denoiser, FnDenoiser, Prediction};
pub use elbo::{ElboReport, elbo_bits_per_token};
pub use entropy_bounded::EntropyBounded;
pub use error::{Error, Result};
pub use guidance::classifier_free_guidance;
pub use halton::{halton_rank, radical_inverse};
pub use known_tokens::{KnownTokens, Reimpose};
pub use log_space::{
    LOG_EPS, LOG_PROB_FLOOR, log_add_exp, log_normalise, log_one_hot, log_sum_exp,
};
pub use loss::{
    LossConfig, TrainingLoss, VlbTerms, mean_value, prior_kl_per_token, training_loss, vlb_terms,
};
pub use mask_and_replace::MaskAndReplace;
pub use maskgit::{MaskGit, Remask, UnmaskCurve, UnmaskOrder};
pub use noise::{NoiseSource, ReplayNoise, SeededNoise, gumbel_argmax};
pub use parameterisation::{Parameterisation, WithParameterisation, direct_posterior};
pub use purity::{ImprovedPrior, PriorRule, UnmaskSchedule};
pub use sampler::{
    SamplerConfig, SamplingMethod, StepEvent, initial_state, reverse_step, sample,
    sample_with_known,
};
pub use tables::LogTables;
pub use template_world::{BayesDenoiser, TemplateWorld};
pub use threshold_commit::ThresholdCommit;
pub use timestep_plan::{PlannedStep, PosteriorRule, TimestepPlan};
pub use timestep_sampler::{IMPORTANCE_WARMUP, TimestepSampler, TimestepSampling};
pub use transition::Transition;
pub use truncation::{Truncation, truncate};
pub use uniform::Uniform;
pub use vq_schedule::{MAX_TIMESTEPS, VqDiffusionSchedule};

/// The crate README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// This crate's version (recorded with generated images).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
