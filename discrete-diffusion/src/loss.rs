//! Training losses of x₀-parameterised discrete diffusion (VQ-Diffusion §3.3 and Eq. 6;
//! original `DiffusionTransformer._train_loss`, docs/reference-behaviour.md §6.2; D3PM's hybrid loss):
//!
//! * `L_{t-1} = KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t))` per token, for `t ≥ 1`;
//! * `L_0 = -log p_θ(x_0 | x_1)` (the decoder NLL) at `t = 0`;
//! * `L_T = KL(q(x_T | x_0) ‖ p(x_T))` (prior term, constant in θ; [`prior_kl_per_token`]);
//! * the auxiliary `x_0` loss `KL(onehot(x_0) ‖ p̂(x_0 | x_t))` (= cross-entropy), weight `λ`
//!   (5e-4 in VQ-Diffusion), optionally times the adaptive factor `2 - t/T`;
//! * per-position weights for masked / unmasked `x_t`.
//!
//! `training_loss` combines them as the original does: `(L_t + w(t)·λ·L_aux) / p(t)` summed over
//! tokens, averaged over `B·N` — `p(t)` being the probability the time sampler drew `t` with.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::forward::{check_log_probs, check_tokens};
use crate::log_space::{log_one_hot, sum_last};
use crate::{Error, LOG_PROB_FLOOR, Parameterisation, Result, Timesteps, Transition};

/// Loss settings (defaults: VQ-Diffusion's ITHQ config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// `λ`, the auxiliary x₀ loss weight (5e-4).
    pub aux_weight: f64,
    /// Multiply `λ` by `2 - t/T` (true in VQ-Diffusion).
    pub adaptive_aux: bool,
    /// Weight of positions where `x_t` is masked.
    pub masked_weight: f64,
    /// Weight of positions where `x_t` is not masked.
    pub unmasked_weight: f64,
    /// What the network output means (x₀ for VQ-Diffusion). With
    /// [`Parameterisation::Direct`] the model term is the network's reverse step itself and there
    /// is no x₀ prediction, so the auxiliary term is zero.
    #[serde(default)]
    pub parameterisation: Parameterisation,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            aux_weight: 5e-4,
            adaptive_aux: true,
            masked_weight: 1.0,
            unmasked_weight: 1.0,
            parameterisation: Parameterisation::X0,
        }
    }
}

/// Per-token loss terms, `(B, N)` each, in nats.
#[derive(Debug, Clone)]
pub struct VlbTerms {
    /// `L_t`: the KL term for samples with `t ≥ 1`, the decoder NLL for `t = 0`.
    pub vlb: Tensor,
    /// The auxiliary x₀ term (decoder NLL at `t = 0`, as the original).
    pub aux: Tensor,
}

/// The combined training loss and what the time sampler needs.
#[derive(Debug, Clone)]
pub struct TrainingLoss {
    /// Scalar loss to back-propagate.
    pub loss: Tensor,
    /// Per-sample `L_t` summed over tokens (nats), for importance sampling.
    pub vlb_per_sample: Vec<f64>,
    /// Mean VLB term per token (nats) over the batch.
    pub vlb_per_token: f64,
    /// Mean auxiliary term per token (nats).
    pub aux_per_token: f64,
}

/// `Σ_c exp(a)·(a - b)` over the class axis → `(B, N)`.
fn categorical_kl(log_a: &Tensor, log_b: &Tensor) -> Result<Tensor> {
    Ok((log_a.exp()? * (log_a - log_b)?)?.sum(1)?)
}

/// `-log p(x_0)` read at the true class: `(B, N)`.
fn nll_at(log_p: &Tensor, x0: &Tensor) -> Result<Tensor> {
    Ok(log_p
        .gather(&x0.unsqueeze(1)?.to_dtype(DType::U32)?, 1)?
        .squeeze(1)?
        .neg()?)
}

/// The per-token VLB and auxiliary terms for a batch with per-sample timesteps `ts`.
///
/// `log_p_x0`: model output `(B, K, N)` (floored at `-70` here, as the original clamps it);
/// `x0`, `x_t`: ids `(B, N)`.
pub fn vlb_terms<T: Transition + ?Sized>(
    transition: &T,
    log_p_x0: &Tensor,
    x0: &Tensor,
    x_t: &Tensor,
    ts: &[usize],
    config: &LossConfig,
) -> Result<VlbTerms> {
    let k = transition.num_classes();
    let (b, n) = check_tokens(x0, k, "x0")?;
    check_tokens(x_t, transition.num_states(), "x_t")?;
    check_log_probs(log_p_x0, b, k, n, "log_p_x0")?;
    if ts.len() != b {
        return Err(Error::Shape {
            what: "timesteps",
            expected: format!("{b} (one per sample)"),
            found: vec![ts.len()],
        });
    }
    let times = Timesteps::PerSample(ts.to_vec());
    let log_p_x0 = log_p_x0.maximum(LOG_PROB_FLOOR)?;
    let onehot_x0 = log_one_hot(x0, transition.num_states())?.narrow(1, 0, k)?;
    // Both posteriors clamped to [-70, 0] as the original's q_posterior does: this also keeps
    // impossible states (log 0 = -inf on both sides) from turning into 0·NaN in the KL.
    let log_model = match config.parameterisation {
        Parameterisation::X0 => crate::posterior::q_posterior(transition, &log_p_x0, x_t, &times)?,
        Parameterisation::Direct => {
            crate::parameterisation::direct_posterior(transition, &log_p_x0, x_t, &times)?
        }
    }
    .clamp(LOG_PROB_FLOOR, 0f32)?;
    let log_true = crate::posterior::q_posterior(transition, &onehot_x0, x_t, &times)?
        .clamp(LOG_PROB_FLOOR, 0f32)?;
    let kl = categorical_kl(&log_true, &log_model)?;
    let decoder_nll = nll_at(&log_model, x0)?;
    let kl_aux = match config.parameterisation {
        Parameterisation::X0 => categorical_kl(&onehot_x0, &log_p_x0)?,
        Parameterisation::Direct => Tensor::zeros((b, n), kl.dtype(), kl.device())?,
    };

    let device = x0.device();
    let is_t0 = Tensor::from_vec(
        ts.iter().map(|&t| u8::from(t == 0)).collect::<Vec<_>>(),
        (b, 1),
        device,
    )?
    .broadcast_as((b, n))?;
    let weights = match transition.mask_index() {
        Some(m) => {
            let masked = x_t.to_dtype(DType::U32)?.eq(m as u32)?;
            let w_masked = Tensor::full(config.masked_weight as f32, (b, n), device)?;
            let w_unmasked = Tensor::full(config.unmasked_weight as f32, (b, n), device)?;
            masked.where_cond(&w_masked, &w_unmasked)?
        }
        None => Tensor::full(config.unmasked_weight as f32, (b, n), device)?,
    };
    let vlb = is_t0.where_cond(&decoder_nll, &(kl * &weights)?)?;
    let aux = is_t0.where_cond(&decoder_nll, &(kl_aux * weights)?)?;
    Ok(VlbTerms { vlb, aux })
}

/// The original's training objective `mean((L_t + w(t)·λ·L_aux) / p(t))` for per-sample
/// timesteps `ts` drawn with probabilities `pt`.
pub fn training_loss<T: Transition + ?Sized>(
    transition: &T,
    log_p_x0: &Tensor,
    x0: &Tensor,
    x_t: &Tensor,
    ts: &[usize],
    pt: &[f64],
    config: &LossConfig,
) -> Result<TrainingLoss> {
    let terms = vlb_terms(transition, log_p_x0, x0, x_t, ts, config)?;
    let (b, n) = terms.vlb.dims2()?;
    if pt.len() != b {
        return Err(Error::Shape {
            what: "timestep probabilities",
            expected: format!("{b}"),
            found: vec![pt.len()],
        });
    }
    let big_t = transition.num_timesteps() as f64;
    let device = x0.device();
    let inv_pt = Tensor::from_vec(
        pt.iter().map(|p| (1.0 / p) as f32).collect::<Vec<_>>(),
        b,
        device,
    )?;
    let aux_scale = Tensor::from_vec(
        ts.iter()
            .map(|&t| {
                let adaptive = if config.adaptive_aux {
                    1.0 - t as f64 / big_t + 1.0
                } else {
                    1.0
                };
                (adaptive * config.aux_weight) as f32
            })
            .collect::<Vec<_>>(),
        b,
        device,
    )?;
    let vlb_sum = sum_last(&terms.vlb)?;
    let aux_sum = sum_last(&terms.aux)?;
    let total = ((&vlb_sum + (&aux_sum * aux_scale)?)? * inv_pt)?;
    let loss = (total.sum_all()? / (b * n) as f64)?;
    let vlb_per_sample: Vec<f64> = vlb_sum.to_dtype(DType::F64)?.to_vec1()?;
    let aux_total: f64 = aux_sum.to_dtype(DType::F64)?.sum_all()?.to_scalar()?;
    Ok(TrainingLoss {
        loss,
        vlb_per_token: vlb_per_sample.iter().sum::<f64>() / (b * n) as f64,
        aux_per_token: aux_total / (b * n) as f64,
        vlb_per_sample,
    })
}

/// `KL(q(x_{T-1} | x_0) ‖ p(x_T))` per token in nats, with `p` = [`Transition::prior`]. By
/// symmetry it is the same for every `x_0`; infinite if the prior misses mass `q` has.
pub fn prior_kl_per_token<T: Transition + ?Sized>(transition: &T) -> f64 {
    let c = transition.cumulative(transition.num_timesteps() - 1);
    let prior = transition.prior();
    let k = transition.num_classes();
    let term = |q: f64, p: f64| {
        if q <= 0.0 {
            0.0
        } else if p <= 0.0 {
            f64::INFINITY
        } else {
            q * (q / p).ln()
        }
    };
    let mut kl = term(c.stay + c.replace, prior[0]) + (k as f64 - 1.0) * term(c.replace, prior[0]);
    if transition.has_mask_state() {
        kl += term(c.mask, prior[k]);
    }
    kl
}

/// Mean of a `(B, N)` tensor as f64 (for logging).
pub fn mean_value(x: &Tensor) -> Result<f64> {
    Ok(x.to_dtype(DType::F64)?.mean_all()?.to_scalar()?)
}
