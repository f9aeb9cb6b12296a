//! The forward-backward predictor-corrector ([`ForwardBackwardCorrector`], [`forward_step`];
//! Campbell et al. 2022 §4.2); the math is on [`ForwardBackwardCorrector`].

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::known_tokens::draw_transition;
use crate::{Error, NoiseSource, Result, Transition};

/// A predictor-corrector sampler for any of the crate's chains: after a reverse (predictor)
/// step lands on `x_s`, each corrector step noises it forward one step,
/// `x̃_{s+1} ~ q(x_{s+1} | x_s)`, and denoises back, `x_s ~ p(x_s | x̃_{s+1})`, with a fresh
/// model call (the forward-backward corrector of Campbell et al. 2022, "A continuous time
/// framework for discrete denoising models", §4.2, in discrete time; also Gat et al. 2024,
/// "Discrete flow matching", §4).
///
/// If `x_s` follows the forward marginal `q(x_s)` and the model's reverse step were exact, one
/// corrector step would leave that marginal unchanged: `q(x_{s+1} | x_s)` carries `q(x_s)` to
/// `q(x_{s+1})` and the true reverse step carries it back. With a learned model the pair is a
/// Markov move that pulls the state towards states the model finds consistent, which corrects
/// some of the errors earlier predictor steps made. Unlike the remasking and editing samplers
/// ([`crate::MaskGit`] with [`crate::Remask`], [`crate::ThresholdCommit`]) this works on the
/// mask-and-replace chain as it is: the forward step uses the chain's own one-step
/// coefficients `(α_{s+1}, β_{s+1}, γ_{s+1})`, so it masks and replaces exactly as training
/// corrupted, and the backward step is the same x₀-parameterised posterior the predictor uses.
///
/// Correctors run after the last `last_steps` predictor steps that land on a noisy state (not
/// after the final step to the data, where `x_{s+1}` would be the chain's own `x_0`);
/// each adds `per_step` model calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardBackwardCorrector {
    /// Corrector steps after each corrected predictor step (each one model call).
    pub per_step: usize,
    /// How many of the last predictor steps are corrected.
    pub last_steps: usize,
}

impl ForwardBackwardCorrector {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.per_step == 0 || self.last_steps == 0 {
            return Err(Error::InvalidSetting(format!(
                "a corrector needs per_step ≥ 1 and last_steps ≥ 1, got {} and {}",
                self.per_step, self.last_steps
            )));
        }
        Ok(())
    }

    /// Corrector calls added to a plan of `steps` predictor steps (the last goes to the data).
    pub fn extra_calls(&self, steps: usize) -> usize {
        self.per_step * self.last_steps.min(steps.saturating_sub(1))
    }
}

/// `x̃ ~ q(x_{t} | x_{t−1} = x)` for `x` `(B, N)`: one forward step of `transition` into
/// timestep `t ≥ 1` (masked tokens stay masked).
pub fn forward_step<T: Transition + ?Sized>(
    transition: &T,
    x: &Tensor,
    t: usize,
    noise: &mut dyn NoiseSource,
) -> Result<Tensor> {
    transition.check_timestep(t)?;
    if t == 0 {
        return Err(Error::InvalidSetting(
            "a forward step goes into a timestep ≥ 1".into(),
        ));
    }
    let (b, n) = crate::forward::check_tokens(x, transition.num_states(), "x")?;
    let source = x.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    let mask = transition.mask_index().map(|m| m as u32);
    let mut tokens = source.clone();
    draw_transition(
        transition.step(t),
        transition.num_classes(),
        mask,
        &source,
        &mut tokens,
        |i| Some(source[i]) != mask,
        noise,
    )?;
    Ok(Tensor::from_vec(tokens, (b, n), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MaskAndReplace, SeededNoise};
    use candle_core::Device;

    #[test]
    fn a_forward_step_masks_and_replaces_at_the_step_rates() {
        let mr = MaskAndReplace::paper(8, 20).unwrap();
        let t = 12;
        let c = mr.step(t);
        let n = 40_000;
        let x = Tensor::from_vec(vec![3u32; n], (1, n), &Device::Cpu).unwrap();
        let y = forward_step(&mr, &x, t, &mut SeededNoise::new(4))
            .unwrap()
            .to_vec2::<u32>()
            .unwrap()
            .remove(0);
        let frac = |v: u32| y.iter().filter(|&&a| a == v).count() as f64 / n as f64;
        assert!((frac(8) - c.mask).abs() < 0.01, "{} vs {}", frac(8), c.mask);
        assert!((frac(3) - (c.stay + c.replace)).abs() < 0.01);
        assert!((frac(5) - c.replace).abs() < 0.005);
        // Masks stay masked.
        let m = Tensor::from_vec(vec![8u32; 10], (1, 10), &Device::Cpu).unwrap();
        let out = forward_step(&mr, &m, t, &mut SeededNoise::new(1)).unwrap();
        assert_eq!(out.to_vec2::<u32>().unwrap()[0], vec![8u32; 10]);
        assert!(forward_step(&mr, &x, 0, &mut SeededNoise::new(1)).is_err());
        assert!(
            ForwardBackwardCorrector {
                per_step: 0,
                last_steps: 3
            }
            .validate()
            .is_err()
        );
    }
}
