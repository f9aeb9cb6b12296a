//! Affine projection `y = x Wᵀ + b` (PyTorch `nn.Linear`, weight `(out, in)`), the building block
//! of transformers' `CLIPAttention` and `CLIPMLP`. On a `VarMap` the weight is initialised like
//! transformers' `CLIPPreTrainedModel._init_weights` (normal with a caller-given std, zero bias).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// A linear layer with bias.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    /// Loads `<vb>.weight` `(out, in)` and `<vb>.bias` `(out)`; fresh weights are `N(0, std²)`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, std: f64) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        let bias = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
        Ok(Self {
            inner: candle_nn::Linear::new(weight, Some(bias)),
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
    }
}
