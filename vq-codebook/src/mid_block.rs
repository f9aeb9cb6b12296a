//! diffusers' `UNetMidBlock2D` as used by the VAE (`diffusers/models/unets/unet_2d_blocks.py`,
//! no time embedding, one layer): `resnets.0 → attentions.0 → resnets.1` at the deepest channel
//! count, the attention being optional (`mid_block_add_attention`; docs/reference-behaviour.md §4.2).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::attention_block::AttentionBlock;
use crate::error::Result;
use crate::resnet_block::ResnetBlock2D;

/// The bottleneck block of the encoder and of the decoder.
#[derive(Debug, Clone)]
pub struct MidBlock {
    resnet0: ResnetBlock2D,
    attention: Option<AttentionBlock>,
    resnet1: ResnetBlock2D,
}

impl MidBlock {
    /// Builds the block from the weights under `vb` (`encoder.mid_block` / `decoder.mid_block`).
    pub fn new(vb: VarBuilder, channels: usize, groups: usize, attention: bool) -> Result<Self> {
        let attention = if attention {
            Some(AttentionBlock::new(
                vb.pp("attentions").pp(0),
                channels,
                groups,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnet0: ResnetBlock2D::new(vb.pp("resnets").pp(0), channels, channels, groups)?,
            attention,
            resnet1: ResnetBlock2D::new(vb.pp("resnets").pp(1), channels, channels, groups)?,
        })
    }

    /// The attention block, if any.
    pub fn attention(&self) -> Option<&AttentionBlock> {
        self.attention.as_ref()
    }
}

impl Module for MidBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.apply(&self.resnet0)?;
        if let Some(attn) = &self.attention {
            h = h.apply(attn)?;
        }
        h.apply(&self.resnet1)
    }
}
