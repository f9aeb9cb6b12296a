//! One pre-LN transformer block, transformers' `CLIPEncoderLayer`:
//! `x = x + self_attn(layer_norm1(x)); x = x + mlp(layer_norm2(x))` (both residual sums are
//! fused into the output projections).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use vq_nn::LayerNorm;

use crate::attention::ClipAttention;
use crate::config::ClipTextConfig;
use crate::error::Result;
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
        let norm = |name: &str| {
            LayerNorm::new(vb.pp(name), config.hidden_size, config.layer_norm_eps, true)
        };
        Ok(Self {
            self_attn: ClipAttention::new(vb.pp("self_attn"), config)?,
            layer_norm1: norm("layer_norm1")?,
            mlp: ClipMlp::new(vb.pp("mlp"), config)?,
            layer_norm2: norm("layer_norm2")?,
        })
    }

    /// `(batch, seq, d)` → `(batch, seq, d)` under the additive `mask`.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = self
            .self_attn
            .forward_residual(&self.layer_norm1.forward_t(x, false)?, mask, x)?;
        self.mlp
            .forward_residual(&self.layer_norm2.forward_t(&x, false)?, &x)
    }
}
