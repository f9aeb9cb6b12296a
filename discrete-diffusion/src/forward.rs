//! The forward process in log space: the column `log q(x_t = observed | x_prev = i)` used by the
//! posterior, the application of a cumulative transition to a distribution over `x_0`, and
//! sampling `x_t ~ q(x_t | x_0)`.
//!
//! These are diffusers' `log_Q_t_transitioning_to_known_class` and
//! `apply_cumulative_transitions` (docs/reference-behaviour.md §2.4–2.5), generalised to the three families and to
//! per-sample timesteps: for a real class `i < K`,
//! `log q(x' = obs | x = i) = logaddexp(log_onehot(obs)[i] + ln stay, ln replace)`, overwritten by
//! `ln mask` where `obs` is the mask; the mask row is `log_onehot(obs)[K]` (the mask is absorbing).

use candle_core::{DType, Tensor};

use crate::coefficients::CoefficientTensors;
use crate::log_space::{log_add_exp, log_one_hot};

use crate::{Coefficients, Error, NoiseSource, Result, Timesteps, Transition, gumbel_argmax};

/// Checks that `x` is a `(B, N)` tensor of ids below `limit`; returns `(B, N)`.
pub(crate) fn check_tokens(x: &Tensor, limit: usize, what: &'static str) -> Result<(usize, usize)> {
    let dims = x.dims();
    if dims.len() != 2 {
        return Err(Error::Shape {
            what,
            expected: "(batch, tokens)".into(),
            found: dims.to_vec(),
        });
    }
    if x.elem_count() > 0 {
        let max = x
            .to_dtype(DType::U32)?
            .flatten_all()?
            .max(0)?
            .to_scalar::<u32>()?;
        if max as usize >= limit {
            return Err(Error::TokenOutOfRange {
                what,
                id: max,
                limit,
            });
        }
        if x.dtype() == DType::I64 {
            let min = x.flatten_all()?.min(0)?.to_scalar::<i64>()?;
            if min < 0 {
                return Err(Error::InvalidSetting(format!(
                    "{what}: negative token id {min}"
                )));
            }
        }
    }
    Ok((dims[0], dims[1]))
}

/// Checks a `(B, classes, N)` log-probability tensor.
pub(crate) fn check_log_probs(
    x: &Tensor,
    batch: usize,
    classes: usize,
    tokens: usize,
    what: &'static str,
) -> Result<()> {
    if x.dims() != [batch, classes, tokens] {
        return Err(Error::Shape {
            what,
            expected: format!("({batch}, {classes}, {tokens})"),
            found: x.dims().to_vec(),
        });
    }
    Ok(())
}

/// Coefficient tensors for every row of a batch (1 row when the timestep is shared).
pub(crate) fn coefficient_rows(
    ts: &Timesteps,
    batch: usize,
    device: &candle_core::Device,
    f: impl Fn(usize) -> Coefficients,
) -> Result<CoefficientTensors> {
    let rows = ts.rows(batch)?;
    let coefficients: Vec<Coefficients> = (0..rows).map(|i| f(ts.get(i))).collect();
    CoefficientTensors::new(&coefficients, device)
}

/// `log q(x' = observed | x = i)` for every previous state `i`: `(B, K, N)`, or `(B, K+1, N)`
/// with the mask row appended when `with_mask_row` (one-step/span columns).
///
/// The entry is `logaddexp(log_onehot[i] + ln stay, ln replace)`; since a log one-hot holds only
/// `0` and `ln(1e-30)`, the column takes two values per row (`hot`, `cold`), selected here instead
/// of evaluating the log-add-exp on every element.
pub(crate) fn log_q_column<T: Transition + ?Sized>(
    transition: &T,
    log_onehot_observed: &Tensor,
    observed_is_mask: Option<&Tensor>,
    c: &CoefficientTensors,
    with_mask_row: bool,
) -> Result<Tensor> {
    let k = transition.num_classes();
    let rows = log_onehot_observed.narrow(1, 0, k)?;
    let shape = rows.shape().clone();
    let mut v = rows
        .ge(crate::LOG_EPS * 0.5)?
        .where_cond(&c.hot.broadcast_as(&shape)?, &c.cold.broadcast_as(&shape)?)?;
    if let Some(is_mask) = observed_is_mask {
        let mask_value = c.mask.broadcast_as(&shape)?;
        v = is_mask.broadcast_as(&shape)?.where_cond(&mask_value, &v)?;
        if with_mask_row {
            v = Tensor::cat(&[&v, &log_onehot_observed.narrow(1, k, 1)?], 1)?;
        }
    }
    Ok(v)
}

/// `log Σ_i exp(q[i]) · q(x' = j | x = i)` for a distribution `q` over the real classes
/// `(B, K, N)`: `(B, states, N)` (the mask row is `ln mask`, broadcast).
pub(crate) fn apply_transition<T: Transition + ?Sized>(
    transition: &T,
    log_q: &Tensor,
    c: &CoefficientTensors,
) -> Result<Tensor> {
    let v = log_add_exp(&log_q.broadcast_add(&c.stay)?, &c.replace)?;
    if transition.has_mask_state() {
        let (b, _, n) = v.dims3()?;
        let mask_row = c.mask.broadcast_as((b, 1, n))?.contiguous()?;
        Ok(Tensor::cat(&[&v, &mask_row], 1)?)
    } else {
        Ok(v)
    }
}

/// `log q(x_t | x_0)` for ids `x0` `(B, N)`: `(B, states, N)`.
pub(crate) fn log_q_x_t_given_x0<T: Transition + ?Sized>(
    transition: &T,
    x0: &Tensor,
    ts: &Timesteps,
) -> Result<Tensor> {
    let (b, _) = check_tokens(x0, transition.num_classes(), "x0")?;
    for t in ts.values() {
        transition.check_timestep(t)?;
    }
    let onehot =
        log_one_hot(x0, transition.num_states())?.narrow(1, 0, transition.num_classes())?;
    let c = coefficient_rows(ts, b, x0.device(), |t| transition.cumulative(t))?;
    apply_transition(transition, &onehot, &c)
}

/// `x_t ~ q(x_t | x_0)` by Gumbel-max.
pub(crate) fn q_sample<T: Transition + ?Sized>(
    transition: &T,
    x0: &Tensor,
    ts: &Timesteps,
    noise: &mut dyn NoiseSource,
) -> Result<Tensor> {
    let logits = log_q_x_t_given_x0(transition, x0, ts)?;
    gumbel_argmax(&logits, noise)
}
