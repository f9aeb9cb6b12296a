//! How a network's output is read: as `p̂(x_0 | x_t)` pushed through the true posterior
//! (VQ-Diffusion §3.3's "reparameterisation trick", D3PM §3.3's x₀-parameterisation — what the
//! papers use, and what makes strided sampling possible), or as the reverse step
//! `p_θ(x_{t-1} | x_t)` itself ("direct", the original repository's unused `'direct'` branch of
//! `DiffusionTransformer.p_pred`).
//!
//! A direct network still outputs `K` log-probabilities per position (the same head as an
//! x₀-network); they are read as the distribution of `x_{t-1}` **given it is not masked**. The
//! mask mass comes from the chain: for a masked `x_t`,
//! `q(x_{t-1} = [MASK] | x_t = [MASK], x_0) = γ̄_{t-1} / γ̄_t` for every `x_0` (Improved
//! VQ-Diffusion, Lemma 1), and an unmasked `x_t` never came from a mask. So both
//! parameterisations share every analytic part of the reverse step and differ only in what the
//! network is asked to learn.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::forward::{check_log_probs, check_tokens};
use crate::log_space::log_one_hot;
use crate::{Denoiser, LOG_PROB_FLOOR, Result, Timesteps, Transition};

/// What a denoiser's `K` log-probabilities per position mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Parameterisation {
    /// `log p̂(x_0 | x_t)`; the reverse step is `Σ_{x_0} q(x_{t-1} | x_t, x_0) p̂(x_0 | x_t)`.
    #[default]
    X0,
    /// `log p_θ(x_{t-1} | x_t, x_{t-1} ≠ [MASK])` (at `t = 0`: `log p_θ(x_0 | x_1)`); see the
    /// module docs. Full-chain sampling only.
    Direct,
}

/// The reverse step `log p_θ(x_{t-1} | x_t)` `(B, S, N)` over all `S` states from a direct
/// network output `log_net` `(B, K, N)` (log-softmax over the real classes). At `t = 0` it is
/// the output itself, with no mass on the mask.
pub fn direct_posterior<T: Transition + ?Sized>(
    transition: &T,
    log_net: &Tensor,
    x_t: &Tensor,
    times: &Timesteps,
) -> Result<Tensor> {
    let k = transition.num_classes();
    let (b, n) = check_tokens(x_t, transition.num_states(), "x_t")?;
    check_log_probs(log_net, b, k, n, "direct denoiser output")?;
    let Some(mask) = transition.mask_index() else {
        return Ok(log_net.clone());
    };
    // The posterior's mask entry does not depend on x_0 (see the module docs): read it off the
    // true posterior for x_0 = class 0.
    let any_x0 = Tensor::zeros((b, n), candle_core::DType::U32, x_t.device())?;
    let onehot = log_one_hot(&any_x0, transition.num_states())?.narrow(1, 0, k)?;
    let reference = crate::posterior::q_posterior(transition, &onehot, x_t, times)?;
    let log_mask = reference
        .narrow(1, mask, 1)?
        .clamp(f32::NEG_INFINITY, 0f32)?
        .maximum(LOG_PROB_FLOOR)?;
    // log(1 - p_mask), with p_mask ≤ e^-70 ≈ 0 mapping to 0.
    let log_unmasked = (1.0 - log_mask.exp()?)?.maximum(1e-30)?.log()?;
    let real = log_net.broadcast_add(&log_unmasked)?;
    Ok(Tensor::cat(&[&real, &log_mask], 1)?)
}

/// A denoiser read with another [`Parameterisation`] (e.g. a network trained with
/// [`Parameterisation::Direct`] behind a wrapper that does not know it).
pub struct WithParameterisation<'a, M: ?Sized> {
    /// The network.
    pub inner: &'a M,
    /// How to read its output.
    pub parameterisation: Parameterisation,
}

impl<C: ?Sized, M: Denoiser<C> + ?Sized> Denoiser<C> for WithParameterisation<'_, M> {
    fn log_p_x0(&self, x_t: &Tensor, t: usize, condition: &C) -> Result<Tensor> {
        self.inner.log_p_x0(x_t, t, condition)
    }

    fn parameterisation(&self) -> Parameterisation {
        self.parameterisation
    }
}
