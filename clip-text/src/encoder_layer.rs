//! One pre-LN transformer block, transformers' `CLIPEncoderLayer`:
//! `x = x + self_attn(layer_norm1(x)); x = x + mlp(layer_norm2(x))`.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::attention::ClipAttention;
use crate::config::ClipTextConfig;
use crate::layer_norm::LayerNorm;
use crate::mlp::ClipMlp;

/// `text_model.encoder.layers.{i}`.
#[derive(Debug, Clone)]
pub struct ClipEncoderLayer {
    self_attn: ClipAttention,
    layer_norm1: LayerNorm,
    mlp: ClipMlp,
    layer_norm2: LayerNorm,
}

impl ClipEncoderLayer {
    /// Loads the layer under `vb` (= `...layers.{i}`).
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        Ok(Self {
            self_attn: ClipAttention::new(vb.pp("self_attn"), config)?,
            layer_norm1: LayerNorm::new(
                vb.pp("layer_norm1"),
                config.hidden_size,
                config.layer_norm_eps,
            )?,
            mlp: ClipMlp::new(vb.pp("mlp"), config)?,
            layer_norm2: LayerNorm::new(
                vb.pp("layer_norm2"),
                config.hidden_size,
                config.layer_norm_eps,
            )?,
        })
    }

    /// `(batch, seq, d)` → `(batch, seq, d)` under the additive `mask`.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = self
            .self_attn
            .forward(&self.layer_norm1.forward(x)?, mask)?;
        let x = (x + h)?;
        let h = self.mlp.forward(&self.layer_norm2.forward(&x)?)?;
        x + h
    }
}
