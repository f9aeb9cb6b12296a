//! The x₀-parameterised reverse step (docs/reference-behaviour.md §2.5, VQ-Diffusion Eq. 11 with the
//! "computation trick" of diffusers' `q_posterior`), exact multi-step ("strided", paper §4.3)
//! posteriors, and the original repository's `sample_fast` approximation.
//!
//! For a target state `s < t` (or `x_0` itself) and a predicted `p̂(x_0)` over the `K` real classes:
//!
//! ```text
//! Lc  = log q(x_t | x_0 = i)                          (cumulative column, K rows)
//! Ls  = log q(x_t | x_s = i)                          (span column, states rows)
//! q   = log p̂(x_0) - Lc;   Z = lse_i q;   q -= Z
//! R   = log Σ_{x0} q(x_s = i | x_0) exp(q[x0])        (apply the cumulative transition to step s)
//! out = R + Ls + Z = log Σ_{x0} p̂(x0) q(x_s = i | x_t, x0)
//! ```
//!
//! With `s = t - 1` this is exactly diffusers' computation (same operations, same order).
//!
//! One correction the reference does not need: when the cumulative replace mass `K·β̄_t` is
//! exactly zero (the absorbing family, or a mask-only mask-and-replace schedule) an unmasked
//! `x_t` can only come from `x_0 = x_t`, and `q(x_t | x_0)` is zero for every other `x_0`. The
//! log-one-hot floor `1e-30` then cancels between `Lc` and `Ls`, and the formula would leak
//! `p̂(x_0 ≠ x_t)` into the result. There the posterior is set to the one-hot of `x_t`, which is
//! what Bayes' rule gives for every `x_0` compatible with `x_t`.

use candle_core::Tensor;

use crate::forward::{check_log_probs, check_tokens, coefficient_rows, log_q_column};
use crate::log_space::{log_add_exp, log_one_hot, log_sum_exp};
use crate::{Coefficients, Error, Result, Timesteps, Transition};

thread_local! {
    /// Tests set this to compare the fused kernel with the composite path.
    pub(crate) static FORCE_COMPOSITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// diffusers' `q_posterior`: the one-step reverse distribution `log p(x_{t-1} | x_t)`.
pub(crate) fn q_posterior<T: Transition + ?Sized>(
    transition: &T,
    log_p_x0: &Tensor,
    x_t: &Tensor,
    ts: &Timesteps,
) -> Result<Tensor> {
    q_posterior_span(transition, log_p_x0, x_t, ts, &|t: usize| t.checked_sub(1))
}

/// The posterior from `x_t` to the state `to(t)` (`None` = `x_0`), per batch row.
pub(crate) fn q_posterior_span<T: Transition + ?Sized>(
    transition: &T,
    log_p_x0: &Tensor,
    x_t: &Tensor,
    ts: &Timesteps,
    to: &dyn Fn(usize) -> Option<usize>,
) -> Result<Tensor> {
    let k = transition.num_classes();
    let states = transition.num_states();
    let (b, n) = check_tokens(x_t, states, "x_t")?;
    check_log_probs(log_p_x0, b, k, n, "log_p_x0")?;
    let rows = ts.rows(b)?;
    for i in 0..rows {
        let t = ts.get(i);
        transition.check_timestep(t)?;
        if let Some(s) = to(t)
            && s >= t
        {
            return Err(Error::InvalidSetting(format!(
                "posterior target step {s} must be earlier than t = {t}"
            )));
        }
    }
    if log_p_x0.device().is_cpu() && !log_p_x0.track_op() && !FORCE_COMPOSITE.with(|f| f.get()) {
        return crate::posterior_kernel::q_posterior_cpu(transition, log_p_x0, x_t, ts, to);
    }
    let device = x_t.device();
    let cumulative = coefficient_rows(ts, b, device, |t| transition.cumulative(t))?;
    let span = coefficient_rows(ts, b, device, |t| transition.span(to(t), t))?;
    let target = coefficient_rows(ts, b, device, |t| {
        to(t).map_or(Coefficients::IDENTITY, |s| transition.cumulative(s))
    })?;

    let onehot = log_one_hot(x_t, states)?;
    let is_mask = match transition.mask_index() {
        Some(m) => Some(
            x_t.to_dtype(candle_core::DType::U32)?
                .eq(m as u32)?
                .unsqueeze(1)?,
        ),
        None => None,
    };
    let lc = log_q_column(transition, &onehot, is_mask.as_ref(), &cumulative, false)?;
    let ls = log_q_column(transition, &onehot, is_mask.as_ref(), &span, false)?;
    let q = (log_p_x0 - lc)?;
    let z = log_sum_exp(&q, 1)?;
    let q = q.broadcast_sub(&z)?;
    // Real-class rows: log Σ_{x0} q(x_s = i | x0) q̂(x0) + log q(x_t | x_s = i) + Z.
    let r = log_add_exp(&q.broadcast_add(&target.stay)?, &target.replace)?;
    let mut out = (r + ls)?.broadcast_add(&z)?;
    if let Some(k) = transition.mask_index() {
        // Mask row: ln γ̄_s + log q(x_t | x_s = mask) + Z, where the middle term is the
        // observed one-hot's mask entry (the mask never leaves).
        let mask_row = onehot
            .narrow(1, k, 1)?
            .broadcast_add(&target.mask)?
            .broadcast_add(&z)?;
        out = Tensor::cat(&[&out, &mask_row], 1)?;
    }

    // Zero cumulative replace mass: an unmasked x_t pins x_{s} = x_t (see the module docs).
    let pinned: Vec<u8> = (0..rows)
        .map(|i| u8::from(transition.cumulative(ts.get(i)).replace == 0.0))
        .collect();
    if pinned.iter().all(|&p| p == 0) {
        return Ok(out);
    }
    let pinned = Tensor::from_vec(pinned, (rows, 1, 1), device)?;
    let unmasked = match &is_mask {
        Some(m) => m.ones_like()?.sub(m)?,
        None => Tensor::ones((b, 1, n), candle_core::DType::U8, device)?,
    };
    let keep_onehot = unmasked.broadcast_mul(&pinned)?.broadcast_as(out.shape())?;
    Ok(keep_onehot.where_cond(&onehot, &out)?)
}
