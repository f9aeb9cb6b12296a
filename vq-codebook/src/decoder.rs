//! diffusers' VAE `Decoder` (`diffusers/models/autoencoders/vae.py`, `norm_type="group"`), the
//! taming/PatchVQGAN decoder with renamed keys and its up levels stored lowest-resolution first
//! (docs/reference-behaviour.md §4.5):
//!
//! `conv_in (3×3) → mid_block → up_blocks.{i} → conv_norm_out (GN, eps 1e-6) → SiLU → conv_out (3×3)`.
//!
//! Up level `i` uses `reversed(block_out_channels)[i]` channels, has `layers_per_block + 1`
//! resnets and a nearest-×2 upsampler on all levels but the last.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{Conv2d, ConvInput, GroupNorm};

use crate::config::VqModelConfig;
use crate::error::Result;
use crate::mid_block::MidBlock;
use crate::up_block::UpDecoderBlock;
use crate::weights::{conv2d, group_norm};

/// Latents `(B, latent_channels, h, w)` → images `(B, out_channels, h·f, w·f)`.
#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: Conv2d,
    mid_block: MidBlock,
    up_blocks: Vec<UpDecoderBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    /// Builds the decoder from the weights under `vb` (`decoder`).
    pub fn new(vb: VarBuilder, config: &VqModelConfig) -> Result<Self> {
        let reversed: Vec<usize> = config.block_out_channels.iter().rev().copied().collect();
        let groups = config.norm_num_groups;
        let conv_in = conv2d(
            &vb.pp("conv_in"),
            config.latent_channels,
            reversed[0],
            3,
            1,
            1,
        )?;
        let mid_block = MidBlock::new(
            vb.pp("mid_block"),
            reversed[0],
            groups,
            config.mid_block_add_attention,
        )?;
        let mut up_blocks = Vec::with_capacity(reversed.len());
        let mut c_out = reversed[0];
        for (i, block_type) in config.up_block_types.iter().enumerate() {
            let c_in = c_out;
            c_out = reversed[i];
            let is_final = i + 1 == reversed.len();
            up_blocks.push(UpDecoderBlock::new(
                vb.pp("up_blocks").pp(i),
                c_in,
                c_out,
                config.layers_per_block + 1,
                groups,
                block_type.has_attention(),
                !is_final,
            )?);
        }
        let shallowest = config.block_out_channels[0];
        Ok(Self {
            conv_in,
            mid_block,
            up_blocks,
            conv_norm_out: group_norm(&vb.pp("conv_norm_out"), groups, shallowest)?,
            conv_out: conv2d(&vb.pp("conv_out"), shallowest, config.out_channels, 3, 1, 1)?,
        })
    }

    /// The decoder levels (lowest resolution first).
    pub fn up_blocks(&self) -> &[UpDecoderBlock] {
        &self.up_blocks
    }

    /// The bottleneck block.
    pub fn mid_block(&self) -> &MidBlock {
        &self.mid_block
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = z.apply(&self.conv_in)?.apply(&self.mid_block)?;
        for block in &self.up_blocks {
            h = h.apply(block)?;
        }
        let pre = ConvInput {
            norm: Some(&self.conv_norm_out),
            silu: true,
            upsample: false,
        };
        self.conv_out
            .forward_with(&h, pre, None)
            .map_err(vq_nn::Error::into_candle)
    }
}
