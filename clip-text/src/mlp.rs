//! The feed-forward block of transformers' `CLIPMLP`: `fc2(act(fc1(x)))` with `act` from
//! `hidden_act` — `quick_gelu` is OpenAI CLIP's `x·σ(1.702x)` (`QuickGELUActivation`). On the
//! CPU the quick-GELU is fused into `fc1`'s output and the encoder layer's residual sum into
//! `fc2`'s ([`vq_nn::Linear`]).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::Linear;

use crate::config::{Activation, ClipTextConfig};
use crate::error::Result;
use crate::linear::linear;

/// Applies an activation; every branch has a backward in candle.
pub fn activate(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match act {
        Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
    }
}

/// `layers.{i}.mlp`.
#[derive(Debug, Clone)]
pub struct ClipMlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl ClipMlp {
    /// Loads `fc1` `(ffn, d)` and `fc2` `(d, ffn)`; fresh weights use transformers' stds
    /// (`fc1`: `(2d)^-½`, `fc2`: `d^-½ (2L)^-½`, times `initializer_factor`).
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        let d = config.hidden_size as f64;
        let factor = config.initializer_factor;
        let in_proj_std =
            d.powf(-0.5) * (2.0 * config.num_hidden_layers.max(1) as f64).powf(-0.5) * factor;
        let fc_std = (2.0 * d).powf(-0.5) * factor;
        Ok(Self {
            fc1: linear(
                vb.pp("fc1"),
                config.hidden_size,
                config.intermediate_size,
                fc_std,
            )?,
            fc2: linear(
                vb.pp("fc2"),
                config.intermediate_size,
                config.hidden_size,
                in_proj_std,
            )?,
            act: config.hidden_act,
        })
    }

    /// `act(fc1(x))`.
    fn hidden(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.act {
            Activation::QuickGelu => self.fc1.forward_approx_gelu(x, false)?,
            act => activate(act, &self.fc1.forward(x)?)?,
        })
    }

    /// `fc2(act(fc1(x)))`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward(&self.hidden(x)?)?)
    }

    /// `residual + forward(x)`, the sum computed by `fc2`.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward_residual(&self.hidden(x)?, residual)?)
    }
}
