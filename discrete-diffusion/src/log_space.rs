//! Log-space primitives shared by every transition family, with the clamping constants of the
//! reference implementations (diffusers `scheduling_vq_diffusion.py`, Microsoft's
//! `diffusion_transformer.py`).
//!
//! * [`log_one_hot`]: one-hot encoding clamped at `1e-30` before the log, so "zero" entries are
//!   `ln(1e-30) = -69.0776` exactly as `index_to_log_onehot` produces them.
//! * [`log_add_exp`]: `ln(eᵃ + eᵇ) = max + ln(1 + e^{min-max})`, with `-inf` handled like
//!   `torch.logaddexp` (`logaddexp(-inf, -inf) = -inf`).
//! * [`log_sum_exp`]: over one axis, keep-dim; an all `-inf` slice yields `-inf` (as torch does),
//!   not NaN.
//! * [`LOG_PROB_FLOOR`]: the `-70` floor the pipelines apply to log-probabilities.

use candle_core::{D, DType, Tensor};

use crate::Result;

/// `ln(1e-30)` in f32: the value of the "zero" entries of a log one-hot vector.
pub const LOG_EPS: f32 = -69.077_55;

/// The floor applied to log-probabilities before sampling (`clamp(min=-70)` in diffusers,
/// `clamp(-70, 0)` in the original code).
pub const LOG_PROB_FLOOR: f32 = -70.0;

/// Log one-hot encoding of token ids `x` of shape `(B, N)` into `(B, num_states, N)`:
/// `0` at the token's class, `ln(1e-30)` elsewhere (diffusers `index_to_log_onehot`).
pub fn log_one_hot(x: &Tensor, num_states: usize) -> Result<Tensor> {
    let x = x.to_dtype(DType::U32)?;
    let classes =
        Tensor::arange(0u32, num_states as u32, x.device())?.reshape((1, num_states, 1))?;
    let hot = x.unsqueeze(1)?.broadcast_eq(&classes)?;
    let shape = hot.shape().clone();
    let zero = Tensor::new(0f32, x.device())?.broadcast_as(&shape)?;
    let eps = Tensor::new(LOG_EPS, x.device())?.broadcast_as(&shape)?;
    Ok(hot.where_cond(&zero, &eps)?)
}

/// Element-wise `ln(eᵃ + eᵇ)` with broadcasting, stable and `-inf`-safe.
///
/// Computed as `max(a, b) + ln(1 + exp(min(a, b) - max(max(a, b), f32::MIN)))`: the inner
/// `maximum(f32::MIN)` keeps `-inf - -inf` from producing NaN, so two `-inf` inputs give `-inf`.
/// Differentiable (only candle ops with backward are used).
pub fn log_add_exp(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let hi = a.broadcast_maximum(b)?;
    let lo = a.broadcast_minimum(b)?;
    let hi_finite = hi.maximum(f32::MIN)?;
    let gap = (lo - &hi_finite)?;
    Ok((hi + gap.exp()?.affine(1.0, 1.0)?.log()?)?)
}

/// `ln Σ exp(x)` over `dim`, keeping the dimension. An all `-inf` slice gives `-inf`.
pub fn log_sum_exp<Dim: candle_core::shape::Dim + Copy>(x: &Tensor, dim: Dim) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.maximum(f32::MIN)?;
    let sum = x.broadcast_sub(&max)?.exp()?.sum_keepdim(dim)?;
    Ok((sum.log()? + max)?)
}

/// Normalises log-probabilities over the class axis (dim 1): `x - lse(x)`.
pub fn log_normalise(x: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_sub(&log_sum_exp(x, 1)?)?)
}

/// Mean over the last axis helper used by losses: sums a `(B, N)` tensor per sample.
pub(crate) fn sum_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.sum(D::Minus1)?)
}
