//! The first-hitting sampler ([`crate::SamplingMethod::FirstHitting`], after Zheng et al.
//! 2024 §4.1): mask-leaving times drawn up front, model calls only where a token leaves the
//! mask; the math is on that variant.

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
