//! Evaluation of the evidence lower bound in bits per token:
//! `-log p(x_0) ≤ L_T + Σ_{t≥1} L_{t-1} + L_0`, every term summed exactly over all `T` timesteps (one denoiser call per timestep,
//! with `x_t ~ q(x_t | x_0)` drawn once per term) — the held-out likelihood metric of D3PM and of
//! the experiments (docs/paper-results.md §4.2).

use crate::loss::{LossConfig, prior_kl_per_token, vlb_terms};
use crate::{Denoiser, NoiseSource, Result, Timesteps, Transition};

/// ELBO terms, in nats per token.
#[derive(Debug, Clone, PartialEq)]
pub struct ElboReport {
    /// `L_t` per timestep (decoder NLL at `t = 0`, KL terms after), nats per token.
    pub per_timestep: Vec<f64>,
    /// The prior term `L_T`, nats per token.
    pub prior: f64,
    /// The whole bound in bits per token.
    pub bits_per_token: f64,
}

/// The ELBO of token sequences `x0` `(B, N)` under `denoiser`.
pub fn elbo_bits_per_token<T, C, M>(
    transition: &T,
    denoiser: &M,
    condition: &C,
    x0: &candle_core::Tensor,
    noise: &mut dyn NoiseSource,
) -> Result<ElboReport>
where
    T: Transition + ?Sized,
    C: ?Sized,
    M: Denoiser<C> + ?Sized,
{
    let (b, _) = crate::forward::check_tokens(x0, transition.num_classes(), "x0")?;
    let unweighted = LossConfig {
        masked_weight: 1.0,
        unmasked_weight: 1.0,
        parameterisation: denoiser.parameterisation(),
        ..LossConfig::default()
    };
    let mut per_timestep = Vec::with_capacity(transition.num_timesteps());
    for t in 0..transition.num_timesteps() {
        let x_t = crate::forward::q_sample(transition, x0, &Timesteps::Shared(t), noise)?;
        let log_p = denoiser.log_p_x0(&x_t, t, condition)?;
        let terms = vlb_terms(transition, &log_p, x0, &x_t, &vec![t; b], &unweighted)?;
        per_timestep.push(crate::loss::mean_value(&terms.vlb)?);
    }
    let prior = prior_kl_per_token(transition);
    let total: f64 = per_timestep.iter().sum::<f64>() + prior;
    Ok(ElboReport {
        per_timestep,
        prior,
        bits_per_token: total / std::f64::consts::LN_2,
    })
}
