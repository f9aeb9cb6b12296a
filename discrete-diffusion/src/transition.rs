//! The [`Transition`] trait: what a family of forward corruption processes must provide
//! (its `(stay, replace, mask)` coefficients per step and in closed form), and everything the
//! library derives from it (forward marginals, sampling, exact posteriors), as provided methods.
//!
//! Families: [`crate::Uniform`] (D3PM uniform), [`crate::Absorbing`] (D3PM absorbing /
//! masked diffusion) and [`crate::MaskAndReplace`] (VQ-Diffusion §4.1).

use candle_core::Tensor;

use crate::{Coefficients, Error, NoiseSource, Result, Timesteps};

/// A discrete forward process over `K` real classes (plus, optionally, an absorbing mask state
/// with index `K`), with `T` steps.
///
/// Implementors give the coefficients; tensors are laid out as in the references:
/// token ids `(B, N)` (u32 or i64), log-probabilities `(B, classes, N)` f32 with the class axis
/// at dim 1.
pub trait Transition: Send + Sync {
    /// Number of real classes `K` (for VQ-Diffusion: the codebook size).
    fn num_classes(&self) -> usize;

    /// Whether the chain has a `[MASK]` state (index `K`).
    fn has_mask_state(&self) -> bool;

    /// Number of forward steps `T`.
    fn num_timesteps(&self) -> usize;

    /// Closed-form cumulative coefficients of `q(x_t | x_0)`, `t ∈ 0..T`.
    fn cumulative(&self, t: usize) -> Coefficients;

    /// Coefficients of `q(x_to | x_from)` for `from < to`; `from = None` means from `x_0`
    /// (the same distribution as [`Transition::cumulative`], possibly rounded differently —
    /// the one-step tables of diffusers compute step 0 this way).
    fn span(&self, from: Option<usize>, to: usize) -> Coefficients;

    /// One-step coefficients of `q(x_t | x_{t-1})` (for `t = 0`: `q(x_0^{noisy} | x_0)`).
    fn step(&self, t: usize) -> Coefficients {
        self.span(t.checked_sub(1), t)
    }

    /// Number of states `K` or `K + 1` (with the mask).
    fn num_states(&self) -> usize {
        self.num_classes() + usize::from(self.has_mask_state())
    }

    /// Index of the mask state, if any (`K`, the last class, as in diffusers).
    fn mask_index(&self) -> Option<usize> {
        self.has_mask_state().then(|| self.num_classes())
    }

    /// Errors unless `t < T`.
    fn check_timestep(&self, t: usize) -> Result<()> {
        if t < self.num_timesteps() {
            Ok(())
        } else {
            Err(Error::TimestepOutOfRange {
                t,
                num_timesteps: self.num_timesteps(),
            })
        }
    }

    /// The limiting distribution `p(x_T)` the reverse chain starts from, over the states:
    /// what `q(x_{T-1} | x_0)` gives for a uniformly distributed `x_0`. For the mask families
    /// with the usual schedules this is (almost) all mass on the mask; for uniform, uniform.
    fn prior(&self) -> Vec<f64> {
        let c = self.cumulative(self.num_timesteps() - 1);
        let k = self.num_classes();
        let mut p = vec![c.stay / k as f64 + c.replace; k];
        if self.has_mask_state() {
            p.push(c.mask);
        }
        p
    }

    /// Mutual information `I(x_0; x_t)` in nats for a uniformly distributed `x_0` — the
    /// quantity D3PM's mutual-information schedule makes linear in `t`.
    fn mutual_information(&self, t: usize) -> f64 {
        let c = self.cumulative(t);
        let k = self.num_classes() as f64;
        let h = |p: f64| if p > 0.0 { -p * p.ln() } else { 0.0 };
        let marginal = k * h(c.stay / k + c.replace) + h(c.mask);
        let conditional = h(c.stay + c.replace) + (k - 1.0) * h(c.replace) + h(c.mask);
        (marginal - conditional).max(0.0)
    }

    /// `log q(x_t | x_0)` for token ids `x0` `(B, N)` → `(B, states, N)`.
    fn log_q_x_t_given_x0(&self, x0: &Tensor, t: impl Into<Timesteps>) -> Result<Tensor>
    where
        Self: Sized,
    {
        crate::forward::log_q_x_t_given_x0(self, x0, &t.into())
    }

    /// Samples `x_t ~ q(x_t | x_0)` by Gumbel-max with the given noise source.
    fn q_sample(
        &self,
        x0: &Tensor,
        t: impl Into<Timesteps>,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor>
    where
        Self: Sized,
    {
        crate::forward::q_sample(self, x0, &t.into(), noise)
    }

    /// The x₀-parameterised reverse step `log p(x_{t-1} | x_t) = log Σ_{x̃0} q(x_{t-1} | x_t, x̃0)
    /// p̂(x̃0 | x_t)`, computed exactly as diffusers' `VQDiffusionScheduler.q_posterior`.
    ///
    /// `log_p_x0`: `(B, K, N)` log-probabilities over the real classes; `x_t`: `(B, N)` ids.
    /// Returns `(B, states, N)`. With a one-hot `log_p_x0` (see [`crate::log_one_hot`]) this is
    /// the true posterior `log q(x_{t-1} | x_t, x_0)`.
    fn q_posterior(
        &self,
        log_p_x0: &Tensor,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
    ) -> Result<Tensor>
    where
        Self: Sized,
    {
        crate::posterior::q_posterior(self, log_p_x0, x_t, &t.into())
    }

    /// The strided reverse step `log p(x_to | x_t) = log Σ_{x̃0} q(x_to | x_t, x̃0) p̂(x̃0 | x_t)`
    /// using the true multi-step transition `q(x_t | x_to)` (VQ-Diffusion §4.3 fast inference).
    /// `to = None` jumps straight to data and returns `log_p_x0` (up to rounding); `to = t - 1`
    /// equals [`Transition::q_posterior`].
    fn q_posterior_strided(
        &self,
        log_p_x0: &Tensor,
        x_t: &Tensor,
        t: usize,
        to: Option<usize>,
    ) -> Result<Tensor>
    where
        Self: Sized,
    {
        crate::posterior::q_posterior_span(self, log_p_x0, x_t, &Timesteps::Shared(t), &|_| to)
    }
}
