//! Conditioning in token space: some tokens of the sample are given (the parts of an image that
//! stay when it is inpainted or edited) and the reverse process fills in the others, conditioned
//! on them through the denoiser, which sees the whole `x_t` at every step.
//!
//! The reverse chain is Markov in `x_t`, so the principled way to hold a token fixed is to put
//! the known part of the state where the forward process would have it: after every step to
//! `x_s`, each known token is redrawn from `q(x_s | x_0)` ([`Reimpose::ForwardSample`], the
//! discrete analogue of RePaint's known-region step, Lugmayr et al. 2022, eq. 8). The simpler
//! rule keeps the known tokens at their data values throughout ([`Reimpose::KeepData`]): the
//! denoiser then sees clean tokens at high noise levels, a state the forward process never
//! produces. Both end with the known tokens exactly at `x_0`.
//!
//! For the transitions of this crate `q(x_s | x_0)` per token is `stay·[x_s = x_0] + replace`
//! over the real classes plus `mask` for the mask state (see [`crate::Coefficients`]), drawn
//! here with one uniform per known token: `u < mask` → mask, `u < mask + K·replace` → class
//! `⌊(u − mask)/replace⌋`, otherwise `x_0`. No uniform is drawn when nothing is known, so an
//! empty set of known tokens leaves a sampler's noise stream (and its output) unchanged.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, NoiseSource, Result, Transition};

/// How known tokens are put back into the state after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reimpose {
    /// Redraw them from the forward marginal `q(x_s | x_0)` at the state's timestep `s`.
    #[default]
    ForwardSample,
    /// Keep them at `x_0`.
    KeepData,
}

/// The given tokens of a batch: their values and which positions they occupy.
#[derive(Debug, Clone)]
pub struct KnownTokens {
    values: Vec<u32>,
    known: Vec<bool>,
    batch: usize,
    num_tokens: usize,
    rule: Reimpose,
}

impl KnownTokens {
    /// `x0` `(B, N)` the data tokens (only their known positions are read) and `known` `(B, N)`
    /// (non-zero = given; any integer or float dtype).
    pub fn new(x0: &Tensor, known: &Tensor, rule: Reimpose) -> Result<Self> {
        let (batch, num_tokens) = x0.dims2().map_err(|_| {
            Error::InvalidSetting(format!(
                "known tokens: x0 must be (batch, tokens), got {:?}",
                x0.dims()
            ))
        })?;
        if known.dims() != x0.dims() {
            return Err(Error::InvalidSetting(format!(
                "known tokens: the mask {:?} does not match x0 {:?}",
                known.dims(),
                x0.dims()
            )));
        }
        let values = x0.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
        let known = known
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| v != 0.0)
            .collect();
        Ok(Self {
            values,
            known,
            batch,
            num_tokens,
            rule,
        })
    }

    /// The re-imposition rule.
    pub fn rule(&self) -> Reimpose {
        self.rule
    }

    /// `(B, N)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.batch, self.num_tokens)
    }

    /// How many tokens are known.
    pub fn count(&self) -> usize {
        self.known.iter().filter(|&&k| k).count()
    }

    /// Whether position `i` of the flattened `(B, N)` batch is known.
    pub fn is_known(&self, i: usize) -> bool {
        self.known[i]
    }

    /// The data value of position `i` of the flattened batch (meaningful where known).
    pub(crate) fn value(&self, i: usize) -> u32 {
        self.values[i]
    }

    /// Checks the known values against the transition's classes and the batch against `x`.
    pub(crate) fn check<T: Transition + ?Sized>(
        &self,
        transition: &T,
        dims: (usize, usize),
    ) -> Result<()> {
        if dims != self.dims() {
            return Err(Error::InvalidSetting(format!(
                "known tokens are {:?} but the sample is {dims:?}",
                self.dims()
            )));
        }
        let k = transition.num_classes() as u32;
        if let Some((i, v)) = self
            .values
            .iter()
            .zip(&self.known)
            .enumerate()
            .find(|(_, (v, known))| **known && **v >= k)
            .map(|(i, (v, _))| (i, v))
        {
            return Err(Error::InvalidSetting(format!(
                "known token {v} at position {i} is not one of the {k} data classes"
            )));
        }
        Ok(())
    }

    /// The state a reverse chain started at `start` begins from: every unknown token as
    /// [`crate::initial_state`] draws it (all `[MASK]` for the mask families) — or, with
    /// `noised_unknown`, drawn from `q(x_start | x_0)` of the data tokens like the known ones
    /// (editing by partial noising) — and the known tokens put where the rule puts them at
    /// `start`.
    pub fn initial_state<T: Transition + ?Sized>(
        &self,
        transition: &T,
        start: usize,
        noised_unknown: bool,
        noise: &mut dyn NoiseSource,
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        transition.check_timestep(start)?;
        let (b, n) = self.dims();
        if noised_unknown {
            self.check_all(transition)?;
            let mut tokens = self.values.clone();
            draw_marginal(
                transition,
                start,
                &self.values,
                &mut tokens,
                |_| true,
                noise,
            )?;
            if self.rule == Reimpose::KeepData {
                for (i, slot) in tokens.iter_mut().enumerate() {
                    if self.known[i] {
                        *slot = self.values[i];
                    }
                }
            }
            return Ok(Tensor::from_vec(tokens, (b, n), device)?);
        }
        let x = crate::initial_state(transition, b, n, noise, device)?;
        self.impose(transition, &x, Some(start), noise)
    }

    fn check_all<T: Transition + ?Sized>(&self, transition: &T) -> Result<()> {
        let k = transition.num_classes() as u32;
        match self.values.iter().position(|&v| v >= k) {
            Some(i) => Err(Error::InvalidSetting(format!(
                "data token {} at position {i} is not one of the {k} data classes",
                self.values[i]
            ))),
            None => Ok(()),
        }
    }

    /// `x` `(B, N)` with its known positions put where the rule puts them at timestep `t`
    /// (`None`: the data, `x_0`).
    pub fn impose<T: Transition + ?Sized>(
        &self,
        transition: &T,
        x: &Tensor,
        t: Option<usize>,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let count = self.count();
        if count == 0 {
            return Ok(x.clone());
        }
        self.check(transition, x.dims2()?)?;
        let mut tokens = x.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
        match (self.rule, t) {
            (Reimpose::ForwardSample, Some(t)) => {
                let known = &self.known;
                draw_marginal(
                    transition,
                    t,
                    &self.values,
                    &mut tokens,
                    |i| known[i],
                    noise,
                )?;
            }
            _ => {
                for (i, slot) in tokens.iter_mut().enumerate() {
                    if self.known[i] {
                        *slot = self.values[i];
                    }
                }
            }
        }
        Ok(Tensor::from_vec(tokens, x.dims(), x.device())?)
    }
}

/// Redraws `tokens[i]` from `q(x_t | x_0 = data[i])` for every selected `i`, one uniform each.
fn draw_marginal<T: Transition + ?Sized>(
    transition: &T,
    t: usize,
    data: &[u32],
    tokens: &mut [u32],
    selected: impl Fn(usize) -> bool,
    noise: &mut dyn NoiseSource,
) -> Result<()> {
    draw_transition(
        transition.cumulative(t),
        transition.num_classes(),
        transition.mask_index().map(|m| m as u32),
        data,
        tokens,
        selected,
        noise,
    )
}

/// Draws each selected `tokens[i]` from the transition `c` applied to the real class
/// `source[i]`: `stay·[x = source] + replace` over the `k` classes plus `mask` for the mask
/// state, with one uniform per selected token (see the module docs).
pub(crate) fn draw_transition(
    c: crate::Coefficients,
    k: usize,
    mask: Option<u32>,
    source: &[u32],
    tokens: &mut [u32],
    selected: impl Fn(usize) -> bool,
    noise: &mut dyn NoiseSource,
) -> Result<()> {
    let count = (0..tokens.len()).filter(|&i| selected(i)).count();
    if count == 0 {
        return Ok(());
    }
    let mut draws = noise.uniform(count)?.into_iter();
    for (i, slot) in tokens.iter_mut().enumerate() {
        if !selected(i) {
            continue;
        }
        let u = draws.next().expect("one uniform per selected token");
        *slot = match mask {
            Some(m) if u < c.mask => m,
            _ if c.replace > 0.0 && u < c.mask + k as f64 * c.replace => {
                (((u - c.mask) / c.replace) as usize).min(k - 1) as u32
            }
            _ => source[i],
        };
    }
    Ok(())
}
