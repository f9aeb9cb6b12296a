//! The first-hitting sampler: model calls only at the timesteps where some masked token leaves
//! the mask (Zheng et al. 2024, "Masked diffusion models are secretly time-agnostic masked
//! models and exploit inaccurate categorical sampling", §4.1, the first-hitting sampler, here
//! for the discrete-time mask-and-replace chain of VQ-Diffusion).
//!
//! **Why the chain allows it.** Under mask-and-replace (and absorbing) diffusion a token, once
//! masked, stays masked, and the chance of being masked does not depend on the class:
//! `q(x_s = m | x_0) = γ̄_s` for every `x_0`. So for a token masked at `start`,
//! `P(still masked at s | masked at start, x_0) = γ̄_s / γ̄_start`, whatever `x_0` and the
//! denoiser's prediction are. The reverse chain's mask-leaving times can therefore be drawn
//! before the first call: token `i` is masked down to `τ_i = min{s : γ̄_s / γ̄_start ≥ u_i}`
//! (`u_i` uniform) and unmasked from `τ_i − 1` on.
//!
//! The sampler visits only the distinct `τ` of the batch, in decreasing order. From the visit
//! at `t` to the next one `t'` (or to the data after the last), it samples `x_{t'}` from the
//! exact Δ-step posterior given the prediction at `t` ([`crate::TimestepPlan::Strided`]'s
//! posterior), conditioned on the drawn times: tokens with `τ = t` leave the mask (the
//! posterior renormalised over the real classes, `∝ ᾱ_{t'}·p̂(c) + β̄_{t'}`), tokens with
//! `τ < t` stay masked, and unmasked tokens take the posterior's replace moves. For an
//! absorbing chain nothing happens between visits, so this is the full chain's distribution
//! with fewer model calls; with replace mass it is a strided sampler whose strides are chosen
//! where the masks leave. The calls are at most `min(start + 1, masked tokens in the batch)`:
//! few tokens over many steps (the embedded 8×8 model, T = 100) save calls, 1024 tokens over
//! 100 steps visit nearly every step.
//!
//! Known tokens (inpainting) are held at their data values and draw no time.

use candle_core::{DType, Tensor};

use crate::known_tokens::KnownTokens;
use crate::sampler::StepEvent;
use crate::{NoiseSource, Result, Timesteps, Transition, gumbel_argmax};

/// Logit that no Gumbel draw can lift into the argmax.
const EXCLUDED: f32 = -1e30;

/// The mask-leaving timestep of a token masked at `start`, from one uniform `u ∈ (0, 1)`.
pub(crate) fn hitting_time<T: Transition + ?Sized>(transition: &T, start: usize, u: f64) -> usize {
    let top = transition.cumulative(start).mask.max(f64::MIN_POSITIVE);
    (0..=start)
        .find(|&s| transition.cumulative(s).mask / top >= u)
        .unwrap_or(start)
}

/// Runs the first-hitting sampler from `x` `(B, N)` started at timestep `start`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_first_hitting<T: Transition + ?Sized>(
    transition: &T,
    predict: &dyn Fn(&Tensor, usize) -> Result<Tensor>,
    x: &Tensor,
    start: usize,
    known: Option<&KnownTokens>,
    noise: &mut dyn NoiseSource,
    on_step: &mut dyn FnMut(&StepEvent) -> Result<()>,
) -> Result<Tensor> {
    let mask = crate::unmasking::mask_of(transition, "first-hitting")?;
    let (b, n) = x.dims2()?;
    let device = x.device().clone();
    let k = transition.num_classes();
    let mut tokens = x.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    let is_known = |i: usize| known.is_some_and(|k| k.is_known(i));
    crate::unmasking::impose_known(&mut tokens, known);
    let masked: Vec<usize> = (0..b * n)
        .filter(|&i| tokens[i] == mask && !is_known(i))
        .collect();
    let mut tau = vec![usize::MAX; b * n];
    for (&i, u) in masked.iter().zip(noise.uniform(masked.len())?) {
        tau[i] = hitting_time(transition, start, u);
    }
    let mut visits: Vec<usize> = masked.iter().map(|&i| tau[i]).collect();
    visits.sort_unstable_by(|a, b| b.cmp(a));
    visits.dedup();
    for (call, &t) in visits.iter().enumerate() {
        let x_t = Tensor::from_vec(tokens.clone(), (b, n), &device)?;
        let log_p = predict(&x_t, t)?;
        let next = visits.get(call + 1).copied();
        let logits = match next {
            Some(to) => crate::posterior::q_posterior_span(
                transition,
                &log_p,
                &x_t,
                &Timesteps::Shared(t),
                &|_| Some(to),
            )?,
            None => log_p,
        };
        let classes = logits.dim(1)?;
        let mut host = logits
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for i in 0..b * n {
            let (image, p) = (i / n, i % n);
            let at = |c: usize| (image * classes + c) * n + p;
            let force = |host: &mut [f32], keep: usize| {
                for c in 0..classes {
                    host[at(c)] = if c == keep { 0.0 } else { EXCLUDED };
                }
            };
            if is_known(i) {
                force(&mut host, tokens[i] as usize);
            } else if tokens[i] == mask && tau[i] < t {
                force(&mut host, mask as usize); // stays masked until its own time
            } else if classes > k {
                host[at(k)] = EXCLUDED; // leaves the mask now, or is already unmasked
            }
        }
        let logits = Tensor::from_vec(host, (b, classes, n), &device)?;
        let x_next = gumbel_argmax(&logits, noise)?;
        tokens = x_next.flatten_all()?.to_vec1::<u32>()?;
        on_step(&StepEvent {
            call,
            planned_calls: visits.len(),
            t,
            tokens: &x_next,
        })?;
    }
    Ok(Tensor::from_vec(tokens, (b, n), &device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MaskAndReplace;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hitting_times_follow_the_mask_schedule(seed in 0u64..1000) {
            // P(τ ≤ s) = γ̄_s / γ̄_start: the empirical CDF at a few s.
            let mr = MaskAndReplace::released(16, 50).unwrap();
            let start = 49;
            let mut noise = crate::SeededNoise::new(seed);
            let us = noise.uniform(4000).unwrap();
            let taus: Vec<usize> = us.iter().map(|&u| hitting_time(&mr, start, u)).collect();
            for s in [0usize, 10, 25, 40, 49] {
                let want = mr.cumulative(s).mask / mr.cumulative(start).mask;
                let got = taus.iter().filter(|&&t| t <= s).count() as f64 / taus.len() as f64;
                prop_assert!((got - want).abs() < 0.035, "s={s}: {got} vs {want}");
            }
        }
    }
}
