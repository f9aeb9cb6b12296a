//! `BasicTransformerBlock` with `norm_type = "ada_norm"` (docs/reference-behaviour.md §3.4):
//! `h += attn1(norm1(h, t))`, `h += attn2(norm2(h, t), text)`, `h += ff(norm3(h))`.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use crate::ada_layer_norm::AdaLayerNorm;
use crate::attention::{Attention, KeyValue};
use crate::config::{NormType, Transformer2DConfig};
use crate::feed_forward::FeedForward;
use discrete_diffusion::Timesteps;
use vq_nn::LayerNorm;

use crate::Result;

/// `norm1` / `norm2` of a block.
#[derive(Debug, Clone)]
pub enum BlockNorm {
    /// Timesteps-conditioned (`"ada_norm"`).
    Ada(AdaLayerNorm),
    /// Plain affine LayerNorm (`"layer_norm"`).
    Plain(LayerNorm),
}

/// Precomputed AdaLN modulations `(1 + scale, shift)` of `norm1` and `norm2` for one timestep
/// input (`None` for plain norms).
#[derive(Debug, Clone)]
pub struct BlockModulation {
    norm1: Option<(Tensor, Tensor)>,
    norm2: Option<(Tensor, Tensor)>,
}

impl BlockNorm {
    fn new(cfg: &Transformer2DConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.inner_dim();
        Ok(match cfg.effective_norm_type()? {
            NormType::AdaNorm => BlockNorm::Ada(AdaLayerNorm::new(
                vb,
                dim,
                cfg.num_embeds_ada_norm.unwrap_or(0),
                cfg.norm_eps,
            )?),
            NormType::LayerNorm => BlockNorm::Plain(LayerNorm::new(
                vb,
                dim,
                cfg.norm_eps,
                cfg.norm_elementwise_affine,
            )?),
        })
    }

    /// For inference: an AdaLN's timestep projection tabulated ([`AdaLayerNorm::tabulated`]).
    fn tabulated(&self) -> Result<Self> {
        Ok(match self {
            BlockNorm::Ada(n) => BlockNorm::Ada(n.tabulated()?),
            BlockNorm::Plain(n) => BlockNorm::Plain(n.clone()),
        })
    }

    fn modulation(&self, t: &Timesteps, dtype: DType) -> Result<Option<(Tensor, Tensor)>> {
        match self {
            BlockNorm::Ada(n) => Ok(Some(n.modulation(t, dtype)?)),
            BlockNorm::Plain(_) => Ok(None),
        }
    }

    /// The norm of `x`, produced in `dtype` (the input dtype of the projection that reads it).
    fn forward(
        &self,
        x: &Tensor,
        m: Option<&(Tensor, Tensor)>,
        dtype: DType,
        train: bool,
    ) -> Result<Tensor> {
        match (self, m) {
            (BlockNorm::Ada(n), Some(m)) => n.forward_modulated(x, m, dtype, train),
            (BlockNorm::Plain(n), _) => Ok(vq_nn::cast(&n.forward_t(x, train)?, dtype)?),
            (BlockNorm::Ada(_), None) => unreachable!("AdaLayerNorm without modulation"),
        }
    }
}

/// One transformer layer: self-attention, cross-attention to the text, feed-forward.
#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    norm1: BlockNorm,
    attn1: Attention,
    norm2: Option<BlockNorm>,
    attn2: Option<Attention>,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl BasicTransformerBlock {
    /// Loads `norm1`, `attn1`, `norm2`, `attn2`, `norm3`, `ff` under `vb`.
    pub fn new(vb: VarBuilder, cfg: &Transformer2DConfig) -> Result<Self> {
        let dim = cfg.inner_dim();
        let attention = |context_dim: usize, vb: VarBuilder| {
            Attention::new(
                vb,
                dim,
                context_dim,
                cfg.num_attention_heads,
                cfg.attention_head_dim,
                cfg.attention_bias,
                cfg.attention_out_bias,
                cfg.dropout,
                cfg.upcast_attention,
            )
        };
        let (norm2, attn2) = match cfg.cross_attention_dim {
            Some(c) => (
                Some(BlockNorm::new(cfg, vb.pp("norm2"))?),
                Some(attention(c, vb.pp("attn2"))?),
            ),
            None => (None, None),
        };
        Ok(Self {
            norm1: BlockNorm::new(cfg, vb.pp("norm1"))?,
            attn1: attention(dim, vb.pp("attn1"))?,
            norm2,
            attn2,
            norm3: LayerNorm::new(
                vb.pp("norm3"),
                dim,
                cfg.norm_eps,
                cfg.norm_elementwise_affine,
            )?,
            ff: FeedForward::new(
                vb.pp("ff"),
                dim,
                cfg.ff_inner_dim(),
                cfg.activation()?,
                cfg.dropout,
            )?,
        })
    }

    /// This block for 8-bit inference: its attention and feed-forward projections in 8 bits,
    /// and its AdaLN norms' timestep projections replaced by their f32 table over the
    /// timesteps ([`AdaLayerNorm::tabulated`]: the same modulations, in a fraction of the
    /// memory). The norms themselves keep their precision.
    pub fn to_int8(&self) -> Result<Self> {
        Ok(Self {
            norm1: self.norm1.tabulated()?,
            attn1: self.attn1.to_int8()?,
            norm2: self.norm2.as_ref().map(BlockNorm::tabulated).transpose()?,
            attn2: self.attn2.as_ref().map(Attention::to_int8).transpose()?,
            ff: self.ff.to_int8()?,
            ..self.clone()
        })
    }

    /// Whether [`BasicTransformerBlock::to_int8`] made this block.
    pub fn has_int8_weights(&self) -> bool {
        self.attn1.has_int8_weights()
    }

    /// The cross-attention module, if the block has one.
    pub fn attn2(&self) -> Option<&Attention> {
        self.attn2.as_ref()
    }

    /// AdaLN modulations for timestep input `t`.
    pub fn modulation(&self, t: &Timesteps, dtype: DType) -> Result<BlockModulation> {
        Ok(BlockModulation {
            norm1: self.norm1.modulation(t, dtype)?,
            norm2: match &self.norm2 {
                Some(n) => n.modulation(t, dtype)?,
                None => None,
            },
        })
    }

    /// Runs the block on `h` `(B, N, D)`; `text` holds either the raw states (keys/values
    /// computed here) or this block's cached keys/values.
    pub fn forward(
        &self,
        h: &Tensor,
        m: &BlockModulation,
        text: CrossInput<'_>,
        train: bool,
    ) -> Result<Tensor> {
        let x = self.norm1.forward(
            h,
            m.norm1.as_ref(),
            self.attn1.input_dtype(h.dtype()),
            train,
        )?;
        let kv = self.attn1.key_value(&x)?;
        let h = self.attn1.forward_kv_residual(&x, &kv, h, train)?;
        let h = match (&self.norm2, &self.attn2) {
            (Some(norm2), Some(attn2)) => {
                let x = norm2.forward(&h, m.norm2.as_ref(), attn2.input_dtype(h.dtype()), train)?;
                match text {
                    CrossInput::States(s) => {
                        attn2.forward_kv_residual(&x, &attn2.key_value(s)?, &h, train)?
                    }
                    CrossInput::Cached(kv) => attn2.forward_kv_residual(&x, kv, &h, train)?,
                    CrossInput::None => {
                        return Err(crate::Error::Context(
                            "this model has cross-attention: encoder states are required".into(),
                        ));
                    }
                }
            }
            _ => h,
        };
        let x = self
            .norm3
            .forward_as(&h, self.ff.input_dtype(h.dtype()), train)?;
        self.ff.forward_residual(&x, &h, train)
    }
}

/// What a block's cross-attention attends to.
#[derive(Debug, Clone, Copy)]
pub enum CrossInput<'a> {
    /// Raw encoder states `(B, L, C)`.
    States(&'a Tensor),
    /// Precomputed keys/values of this block.
    Cached(&'a KeyValue),
    /// No text (models without cross-attention).
    None,
}
