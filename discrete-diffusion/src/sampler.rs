//! The reverse-process sampler: a loop over a [`TimestepPlan`] that calls a [`Denoiser`],
//! truncates and floors its prediction (`-70`, as the pipelines do), and samples the next state
//! from the chosen posterior by Gumbel-max — or, with [`SamplingMethod::ImprovedPrior`], unmasks
//! a few positions per call (Improved VQ-Diffusion, see [`crate::purity`]).
//!
//! With `TimestepPlan::Full`, no truncation and the same noise, this reproduces diffusers'
//! `VQDiffusionPipeline` denoising loop (docs/reference-behaviour.md §1.7, §2.7): `B·(K+1)·N` Gumbel draws for
//! `t > 0` and `B·K·N` at `t = 0`.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::known_tokens::KnownTokens;
use crate::purity::unmask_step;
use crate::timestep_plan::PosteriorRule;
use crate::unmasking::{UnmaskPolicy, run_unmasking};
use crate::{
    Denoiser, EntropyBounded, Error, ForwardBackwardCorrector, ImprovedPrior, LOG_PROB_FLOOR,
    MaskGit, NoiseSource, Parameterisation, Prediction, Result, ThresholdCommit, TimestepPlan,
    Timesteps, Transition, Truncation, UnmaskOrder, gumbel_argmax, truncate,
};

/// How positions are resampled at each step.
///
/// # The unmasking samplers (`MaskGit`, `ThresholdCommit`, `EntropyBounded`)
///
/// These resolve masked positions directly instead of walking the chain's timesteps:
/// MaskGIT-style confidence, Halton and random orders ([`MaskGit`], with ReMDM remasking),
/// threshold commits ([`ThresholdCommit`]) and entropy-bounded steps ([`EntropyBounded`]).
///
/// Each model call: predict `p̂(x_0 | x)`, draw one candidate per position from `p̂` (at a
/// temperature; 0 = the most probable class), and let the sampler's policy decide which masked
/// positions take their candidate (and, for the correcting samplers, which committed ones change
/// or are masked again). The run ends when no position is masked.
///
/// **Which timestep the model sees.** These samplers were written for absorbing chains, where
/// the state's masked fraction is the noise level. A VQ-Diffusion denoiser is conditioned on a
/// timestep `t`, so each call passes the `t` whose mask probability matches the state: the
/// `t ≤ start` minimising `|γ̄_t / γ̄_start − masked fraction|` (`γ̄` the cumulative mask
/// probability; `γ̄_t / γ̄_start` is the chance that a token masked at `start` is still masked
/// at `t`, see [`SamplingMethod::FirstHitting`]). With several images in a batch the largest masked
/// fraction is used (one `t` per call).
///
/// **What happens to the replace mass.** Mask-and-replace also corrupts unmasked tokens with
/// the uniform replace noise `K·β̄_t`, which absorbing-chain samplers have no notion of. Here a
/// committed token is final, except where a policy edits or remasks it: the denoiser sees
/// cleaner states than the forward process would give it at `t` (a state it can explain, with
/// less replace noise than it allows for), and no replace noise is ever added back.
///
/// **Known tokens** (inpainting) count as committed from the first call, at their data values
/// (the [`crate::Reimpose::KeepData`] rule, whatever the tokens' own rule: these samplers have
/// no forward marginal to redraw them from), and no policy changes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SamplingMethod {
    /// VQ-Diffusion v1: every position is resampled from the posterior at every step.
    #[default]
    Posterior,
    /// Improved VQ-Diffusion: unmask a few positions per step (rules 1 and 2).
    ImprovedPrior(ImprovedPrior),
    /// Count-scheduled unmasking: MaskGIT's confidence order, Halton-MaskGIT, random order,
    /// optionally with ReMDM remasking ([`MaskGit`]).
    MaskGit(MaskGit),
    /// Confidence-threshold commits, optionally editing committed tokens ([`ThresholdCommit`]).
    ThresholdCommit(ThresholdCommit),
    /// The entropy-bounded sampler ([`EntropyBounded`]).
    EntropyBounded(EntropyBounded),
    /// The first-hitting sampler: model calls only where a masked token leaves the mask.
    ///
    /// After Zheng et al. 2024, "Masked diffusion models are secretly time-agnostic masked
    /// models and exploit inaccurate categorical sampling", §4.1 (the first-hitting sampler),
    /// here for the discrete-time mask-and-replace chain of VQ-Diffusion.
    ///
    /// **Why the chain allows it.** Under mask-and-replace (and absorbing) diffusion a token, once
    /// masked, stays masked, and the chance of being masked does not depend on the class:
    /// `q(x_s = m | x_0) = γ̄_s` for every `x_0`. So for a token masked at `start`,
    /// `P(still masked at s | masked at start, x_0) = γ̄_s / γ̄_start`, whatever `x_0` and the
    /// denoiser's prediction are. The reverse chain's mask-leaving times can therefore be drawn
    /// before the first call: token `i` is masked down to `τ_i = min{s : γ̄_s / γ̄_start ≥ u_i}`
    /// (`u_i` uniform) and unmasked from `τ_i − 1` on.
    ///
    /// The sampler visits only the distinct `τ` of the batch, in decreasing order. From the visit
    /// at `t` to the next one `t'` (or to the data after the last), it samples `x_{t'}` from the
    /// exact Δ-step posterior given the prediction at `t` ([`crate::TimestepPlan::Strided`]'s
    /// posterior), conditioned on the drawn times: tokens with `τ = t` leave the mask (the
    /// posterior renormalised over the real classes, `∝ ᾱ_{t'}·p̂(c) + β̄_{t'}`), tokens with
    /// `τ < t` stay masked, and unmasked tokens take the posterior's replace moves. For an
    /// absorbing chain nothing happens between visits, so this is the full chain's distribution
    /// with fewer model calls; with replace mass it is a strided sampler whose strides are chosen
    /// where the masks leave. The calls are at most `min(start + 1, masked tokens in the batch)`:
    /// few tokens over many steps (the embedded 8×8 model, T = 100) save calls, 1024 tokens over
    /// 100 steps visit nearly every step.
    ///
    /// Known tokens (inpainting) are held at their data values and draw no time.
    FirstHitting,
    /// The posterior sampler of the plan with forward-backward corrector steps
    /// ([`ForwardBackwardCorrector`]).
    PredictorCorrector(ForwardBackwardCorrector),
}

impl SamplingMethod {
    /// A short name for tables and errors.
    pub fn name(&self) -> &'static str {
        match self {
            SamplingMethod::Posterior => "posterior",
            SamplingMethod::ImprovedPrior(_) => "improved (purity)",
            SamplingMethod::MaskGit(m) => match m.order {
                UnmaskOrder::Confidence { .. } => "MaskGIT",
                UnmaskOrder::Halton => "Halton-MaskGIT",
                UnmaskOrder::Random => "random-order",
            },
            SamplingMethod::ThresholdCommit(_) => "threshold",
            SamplingMethod::EntropyBounded(_) => "entropy-bounded",
            SamplingMethod::FirstHitting => "first-hitting",
            SamplingMethod::PredictorCorrector(_) => "predictor-corrector",
        }
    }

    /// Checks the method's own settings.
    pub fn validate(&self) -> Result<()> {
        match self {
            SamplingMethod::MaskGit(m) => m.validate(),
            SamplingMethod::ThresholdCommit(m) => m.validate(),
            SamplingMethod::EntropyBounded(m) => m.validate(),
            SamplingMethod::PredictorCorrector(c) => c.validate(),
            _ => Ok(()),
        }
    }
}

/// Everything that defines a sampling run except the model, condition and noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// Timesteps visited.
    pub plan: TimestepPlan,
    /// Truncation of `p̂(x_0)` before the posterior.
    pub truncation: Truncation,
    /// Resampling rule.
    pub method: SamplingMethod,
    /// The timestep the reverse chain starts at (`None`: `T − 1`). Below `T − 1` the plan runs
    /// on the chain's first `start + 1` steps ([`TimestepPlan::steps_from`]): partial noising
    /// and editing start from an `x_start` drawn from `q(x_start | x_0)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            plan: TimestepPlan::Full,
            truncation: Truncation::None,
            method: SamplingMethod::Posterior,
            start: None,
        }
    }
}

/// Reported after every model call.
#[derive(Debug)]
pub struct StepEvent<'a> {
    /// 0-based index of the model call.
    pub call: usize,
    /// Total model calls planned (an estimate for the improved sampler).
    pub planned_calls: usize,
    /// The timestep the model was evaluated at.
    pub t: usize,
    /// Tokens after this call, `(B, N)` u32.
    pub tokens: &'a Tensor,
}

/// The state the reverse chain starts from: all `[MASK]` for the mask families (as diffusers and
/// the original code do, also when the prior keeps some replace mass); uniformly random classes
/// for the uniform family and for a mask-and-replace chain that never masks (`γ̄_T = 0`, the
/// replace-only end of the paper's ablation), whose prior has no mass on the mask.
pub fn initial_state<T: Transition + ?Sized>(
    transition: &T,
    batch: usize,
    num_tokens: usize,
    noise: &mut dyn NoiseSource,
    device: &Device,
) -> Result<Tensor> {
    let mask = transition
        .mask_index()
        .filter(|&m| transition.prior().get(m).is_some_and(|&p| p > 0.0));
    let values: Vec<u32> = match mask {
        Some(m) => vec![m as u32; batch * num_tokens],
        None => {
            let k = transition.num_classes() as f64;
            noise
                .uniform(batch * num_tokens)?
                .into_iter()
                .map(|u| ((u * k) as u32).min(transition.num_classes() as u32 - 1))
                .collect()
        }
    };
    Ok(Tensor::from_vec(values, (batch, num_tokens), device)?)
}

/// Runs the reverse chain from `initial` `(B, N)` and returns the final tokens `(B, N)` u32.
pub fn sample<T, C, M>(
    transition: &T,
    denoiser: &M,
    condition: &C,
    initial: &Tensor,
    config: &SamplerConfig,
    noise: &mut dyn NoiseSource,
    on_step: impl FnMut(&StepEvent) -> Result<()>,
) -> Result<Tensor>
where
    T: Transition + ?Sized,
    C: ?Sized,
    M: Denoiser<C> + ?Sized,
{
    sample_with_known(
        transition, denoiser, condition, initial, config, None, noise, on_step,
    )
}

/// [`sample`] with some tokens given ([`KnownTokens`]: inpainting, editing): after every step
/// their positions are re-imposed by the tokens' rule, and the result holds them exactly. Use
/// [`KnownTokens::initial_state`] for `initial`. With no known token this is [`sample`],
/// bit for bit under the same noise.
#[allow(clippy::too_many_arguments)]
pub fn sample_with_known<T, C, M>(
    transition: &T,
    denoiser: &M,
    condition: &C,
    initial: &Tensor,
    config: &SamplerConfig,
    known: Option<&KnownTokens>,
    noise: &mut dyn NoiseSource,
    mut on_step: impl FnMut(&StepEvent) -> Result<()>,
) -> Result<Tensor>
where
    T: Transition + ?Sized,
    C: ?Sized,
    M: Denoiser<C> + ?Sized,
{
    config.truncation.validate()?;
    config.method.validate()?;
    let (b, n) = crate::forward::check_tokens(initial, transition.num_states(), "initial tokens")?;
    if let Some(known) = known {
        known.check(transition, (b, n))?;
    }
    let big_t = transition.num_timesteps();
    let start = config.start.unwrap_or(big_t.saturating_sub(1));
    let impose = |x: Tensor, t: Option<usize>, noise: &mut dyn NoiseSource| -> Result<Tensor> {
        match known {
            Some(known) => known.impose(transition, &x, t, noise),
            None => Ok(x),
        }
    };
    let k = transition.num_classes();
    let predict = |x: &Tensor, t: usize| -> Result<Tensor> {
        let prediction = denoiser.predict(x, t, condition)?;
        step_log_probs(prediction, (b, k, n), config.truncation)
    };
    let mut x = initial.to_dtype(DType::U32)?;
    let corrector = match &config.method {
        SamplingMethod::PredictorCorrector(c) => Some(c),
        _ => None,
    };
    match &config.method {
        SamplingMethod::MaskGit(_)
        | SamplingMethod::ThresholdCommit(_)
        | SamplingMethod::EntropyBounded(_)
        | SamplingMethod::FirstHitting => {
            let name = config.method.name();
            if denoiser.parameterisation() == Parameterisation::Direct {
                return Err(Error::InvalidSetting(format!(
                    "the {name} sampler needs an x0-parameterised denoiser"
                )));
            }
            if config.plan != TimestepPlan::Full {
                return Err(Error::InvalidSetting(format!(
                    "the {name} sampler chooses its own model calls; leave the plan at Full"
                )));
            }
            if start >= big_t {
                return Err(Error::InvalidSetting(format!(
                    "the start timestep must be below the {big_t} steps of the chain, got {start}"
                )));
            }
            let mut policy: Box<dyn UnmaskPolicy + '_> = match &config.method {
                SamplingMethod::MaskGit(m) => Box::new(m.policy(n)),
                SamplingMethod::ThresholdCommit(m) => Box::new(m.clone()),
                SamplingMethod::EntropyBounded(m) => Box::new(m.clone()),
                _ => {
                    return crate::first_hitting::run_first_hitting(
                        transition,
                        &predict,
                        &x,
                        start,
                        known,
                        noise,
                        &mut on_step,
                    );
                }
            };
            x = run_unmasking(
                transition,
                &predict,
                &x,
                start,
                known,
                policy.as_mut(),
                noise,
                &mut on_step,
                name,
            )?;
        }
        SamplingMethod::Posterior | SamplingMethod::PredictorCorrector(_) => {
            let direct = denoiser.parameterisation() == Parameterisation::Direct;
            if direct && config.plan != TimestepPlan::Full {
                return Err(Error::InvalidSetting(
                    "a direct-parameterised denoiser predicts single steps only: strided and fast \
                     plans need the x0 parameterisation (VQ-Diffusion §3.3)"
                        .into(),
                ));
            }
            let steps = config.plan.steps_from(big_t, start)?;
            let planned_calls = steps.len() + corrector.map_or(0, |c| c.extra_calls(steps.len()));
            let mut extra = 0;
            for (call, step) in steps.iter().enumerate() {
                let log_p = predict(&x, step.t)?;
                let logits = match step.rule {
                    PosteriorRule::ToData => log_p,
                    _ if direct => crate::parameterisation::direct_posterior(
                        transition,
                        &log_p,
                        &x,
                        &Timesteps::Shared(step.t),
                    )?,
                    PosteriorRule::Exact { to } => crate::posterior::q_posterior_span(
                        transition,
                        &log_p,
                        &x,
                        &Timesteps::Shared(step.t),
                        &|_| Some(to),
                    )?,
                    PosteriorRule::SingleStepAt { at } => crate::posterior::q_posterior(
                        transition,
                        &log_p,
                        &x,
                        &Timesteps::Shared(at),
                    )?,
                };
                x = gumbel_argmax(&logits, noise)?;
                let landed = match step.rule {
                    PosteriorRule::ToData => None,
                    PosteriorRule::Exact { to } => Some(to),
                    PosteriorRule::SingleStepAt { at } => Some(at - 1),
                };
                x = impose(x, landed, noise)?;
                on_step(&StepEvent {
                    call: call + extra,
                    planned_calls,
                    t: step.t,
                    tokens: &x,
                })?;
                let Some(c) = corrector else { continue };
                let Some(s) = landed.filter(|_| steps.len() - call - 1 <= c.last_steps) else {
                    continue;
                };
                for _ in 0..c.per_step {
                    let noised = crate::corrector::forward_step(transition, &x, s + 1, noise)?;
                    let noised = impose(noised, Some(s + 1), noise)?;
                    let log_p = predict(&noised, s + 1)?;
                    let logits = if direct {
                        crate::parameterisation::direct_posterior(
                            transition,
                            &log_p,
                            &noised,
                            &Timesteps::Shared(s + 1),
                        )?
                    } else {
                        crate::posterior::q_posterior(
                            transition,
                            &log_p,
                            &noised,
                            &Timesteps::Shared(s + 1),
                        )?
                    };
                    x = impose(gumbel_argmax(&logits, noise)?, Some(s), noise)?;
                    extra += 1;
                    on_step(&StepEvent {
                        call: call + extra,
                        planned_calls,
                        t: s + 1,
                        tokens: &x,
                    })?;
                }
            }
        }
        SamplingMethod::ImprovedPrior(prior) => {
            if denoiser.parameterisation() == Parameterisation::Direct {
                return Err(Error::InvalidSetting(
                    "the improved (purity) sampler needs an x0-parameterised denoiser".into(),
                ));
            }
            let mask = transition.mask_index().ok_or_else(|| {
                Error::InvalidSetting(
                    "the improved (purity) sampler needs a chain with a mask state".into(),
                )
            })? as u32;
            if config.plan != TimestepPlan::Full {
                return Err(Error::InvalidSetting(
                    "the improved (purity) sampler runs the full chain; trade speed with max_per_call".into(),
                ));
            }
            if prior.max_per_call == 0 {
                return Err(Error::InvalidSetting(
                    "max_per_call must be at least 1".into(),
                ));
            }
            if start >= big_t {
                return Err(Error::InvalidSetting(format!(
                    "the start timestep must be below the {big_t} steps of the chain, got {start}"
                )));
            }
            let counts = prior.schedule.counts(big_t, n)?;
            let planned = (1..=start)
                .map(|t| counts[t].div_ceil(prior.max_per_call).max(1))
                .sum::<usize>()
                + 1;
            let mut call = 0;
            for t in (1..=start).rev() {
                let mut done = vec![0usize; b];
                while done.iter().any(|&d| d < counts[t]) {
                    let log_p = predict(&x, t)?;
                    let budget: Vec<usize> =
                        done.iter().map(|&d| counts[t].saturating_sub(d)).collect();
                    let (next, unmasked) = unmask_step(prior, &log_p, &x, mask, &budget, noise)?;
                    x = impose(next, Some(t - 1), noise)?;
                    let before = done.clone();
                    for (d, u) in done.iter_mut().zip(&unmasked) {
                        *d += u;
                    }
                    on_step(&StepEvent {
                        call,
                        planned_calls: planned,
                        t,
                        tokens: &x,
                    })?;
                    call += 1;
                    if done == before {
                        break; // nothing left to unmask
                    }
                }
            }
            let log_p = predict(&x, 0)?;
            x = impose(gumbel_argmax(&log_p, noise)?, None, noise)?;
            on_step(&StepEvent {
                call,
                planned_calls: planned,
                t: 0,
                tokens: &x,
            })?;
        }
    }
    Ok(x)
}

/// One reverse step from `x_t` `(B, N)` at timestep `t` with a denoiser's `prediction`:
/// guidance (when the prediction has both halves), `truncation`, the −70 floor, the one-step
/// posterior `p(x_{t−1} | x_t)` (at `t = 0`: `p̂(x_0)` itself) and Gumbel-max sampling — what
/// [`sample`] does at every step of the full chain, fused into a few passes on the CPU.
pub fn reverse_step<T: Transition + ?Sized>(
    transition: &T,
    prediction: Prediction,
    x_t: &Tensor,
    t: usize,
    truncation: Truncation,
    noise: &mut dyn NoiseSource,
) -> Result<Tensor> {
    truncation.validate()?;
    transition.check_timestep(t)?;
    let (b, n) = crate::forward::check_tokens(x_t, transition.num_states(), "x_t")?;
    let log_p = step_log_probs(prediction, (b, transition.num_classes(), n), truncation)?;
    let logits = if t == 0 {
        log_p
    } else {
        crate::posterior::q_posterior(
            transition,
            &log_p,
            &x_t.to_dtype(DType::U32)?,
            &Timesteps::Shared(t),
        )?
    };
    gumbel_argmax(&logits, noise)
}

/// `max(truncate(guide(prediction)), −70)`: the log-probabilities a step samples from. Fused in
/// one pass on the CPU (see [`crate::guided_truncation`]); tensor operations elsewhere.
pub(crate) fn step_log_probs(
    prediction: Prediction,
    (b, k, n): (usize, usize, usize),
    truncation: Truncation,
) -> Result<Tensor> {
    let parts: Vec<&Tensor> = match &prediction {
        Prediction::LogProbs(t) => vec![t],
        Prediction::Guided {
            unconditional,
            conditional,
            ..
        } => vec![unconditional, conditional],
    };
    for p in &parts {
        crate::forward::check_log_probs(p, b, k, n, "denoiser output")?;
    }
    let on_cpu = parts
        .iter()
        .all(|p| p.device().is_cpu() && p.dtype() == DType::F32);
    if !on_cpu {
        let log_p = prediction.log_probs()?;
        return Ok(truncate(&log_p, truncation)?.maximum(LOG_PROB_FLOOR)?);
    }
    let run = |uncond: Option<&[f32]>, cond: &[f32], scale: f32| {
        crate::guided_truncation::guided_truncated(
            &crate::guided_truncation::StepPrediction {
                uncond,
                cond,
                scale,
            },
            (b, k, n),
            truncation,
            LOG_PROB_FLOOR,
        )
    };
    let out = match &prediction {
        Prediction::LogProbs(t) => crate::host::with_f32(t, |c| run(None, c, 1.0))?,
        Prediction::Guided {
            unconditional,
            conditional,
            scale,
        } => crate::host::with_f32(unconditional, |u| {
            crate::host::with_f32(conditional, |c| run(Some(u), c, *scale as f32))
        })??,
    };
    Ok(Tensor::from_vec(out, (b, k, n), parts[0].device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_fused_step_prediction_equals_the_tensor_formula() {
        let dev = Device::Cpu;
        let (b, k, n) = (2, 300, 37);
        let logits = |seed: u64| {
            let t = Tensor::randn(0f32, 3.0, (b, k, n), &dev).unwrap();
            let _ = seed;
            candle_nn::ops::log_softmax(&t, 1).unwrap()
        };
        let (u, c) = (logits(0), logits(1));
        for rule in [
            Truncation::None,
            Truncation::TopR(0.86),
            Truncation::TopR(0.3),
            Truncation::TopK(5),
        ] {
            for scale in [1.0, 3.0] {
                let prediction = if scale == 1.0 {
                    Prediction::LogProbs(c.clone())
                } else {
                    Prediction::Guided {
                        unconditional: u.clone(),
                        conditional: c.clone(),
                        scale,
                    }
                };
                let fused = step_log_probs(prediction.clone(), (b, k, n), rule).unwrap();
                let want = truncate(&prediction.log_probs().unwrap(), rule)
                    .unwrap()
                    .maximum(LOG_PROB_FLOOR)
                    .unwrap();
                let (f, w) = (
                    fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                );
                for (x, y) in f.iter().zip(&w) {
                    // Same kept sets (dropped classes sit exactly at the floor) and values
                    // within float rounding of the log-sum-exp.
                    assert_eq!(
                        *x == LOG_PROB_FLOOR,
                        *y == LOG_PROB_FLOOR,
                        "{rule:?} {scale}"
                    );
                    assert!((x - y).abs() < 2e-5, "{rule:?} {scale}: {x} vs {y}");
                }
            }
        }
    }
}
