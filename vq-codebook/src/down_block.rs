//! diffusers' `DownEncoderBlock2D` / `AttnDownEncoderBlock2D` (`diffusers/models/unets/unet_2d_blocks.py`):
//! `layers_per_block` resnets (the first changes the channel count), each followed by an
//! attention block in the `Attn` variant, then a [`Downsample2D`] on every level but the last
//! (docs/reference-behaviour.md §4.3). Keys: `resnets.{j}`, `attentions.{j}`, `downsamplers.0`.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::attention_block::AttentionBlock;
use crate::downsample::Downsample2D;
use crate::error::Result;
use crate::resnet_block::ResnetBlock2D;

/// One encoder resolution level.
#[derive(Debug, Clone)]
pub struct DownEncoderBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<AttentionBlock>,
    downsampler: Option<Downsample2D>,
}

impl DownEncoderBlock {
    /// Builds the block from the weights under `vb` (`encoder.down_blocks.{i}`).
    pub fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        num_layers: usize,
        groups: usize,
        attention: bool,
        downsample: bool,
    ) -> Result<Self> {
        let mut resnets = Vec::with_capacity(num_layers);
        let mut attentions = Vec::new();
        for j in 0..num_layers {
            let c = if j == 0 { c_in } else { c_out };
            resnets.push(ResnetBlock2D::new(
                vb.pp("resnets").pp(j),
                c,
                c_out,
                groups,
            )?);
            if attention {
                attentions.push(AttentionBlock::new(
                    vb.pp("attentions").pp(j),
                    c_out,
                    groups,
                )?);
            }
        }
        let downsampler = if downsample {
            Some(Downsample2D::new(vb.pp("downsamplers").pp(0), c_out)?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            downsampler,
        })
    }

    /// The attention blocks (empty for a plain block).
    pub fn attentions(&self) -> &[AttentionBlock] {
        &self.attentions
    }
}

impl Module for DownEncoderBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (j, resnet) in self.resnets.iter().enumerate() {
            h = h.apply(resnet)?;
            if let Some(attn) = self.attentions.get(j) {
                h = h.apply(attn)?;
            }
        }
        match &self.downsampler {
            Some(down) => h.apply(down),
            None => Ok(h),
        }
    }
}
