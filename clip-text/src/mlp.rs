//! The feed-forward block of transformers' `CLIPMLP`: `fc2(act(fc1(x)))` with `act` from
//! `hidden_act` — `quick_gelu` is OpenAI CLIP's `x·σ(1.702x)` (`QuickGELUActivation`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::{Activation, ClipTextConfig};
use crate::linear::Linear;

/// Applies an activation; every branch has a backward in candle.
pub fn activate(act: Activation, x: &Tensor) -> Result<Tensor> {
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
            fc1: Linear::new(
                vb.pp("fc1"),
                config.hidden_size,
                config.intermediate_size,
                fc_std,
            )?,
            fc2: Linear::new(
                vb.pp("fc2"),
                config.intermediate_size,
                config.hidden_size,
                in_proj_std,
            )?,
            act: config.hidden_act,
        })
    }
}

impl Module for ClipMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        self.fc2.forward(&activate(self.act, &h)?)
    }
}
