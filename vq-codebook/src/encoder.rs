//! diffusers' VAE `Encoder` (`diffusers/models/autoencoders/vae.py`, `double_z=False`), the
//! taming/PatchVQGAN encoder with renamed keys (docs/reference-behaviour.md §4.3):
//!
//! `conv_in (3×3) → down_blocks.{i} → mid_block → conv_norm_out (GN, eps 1e-6) → SiLU → conv_out (3×3)`.
//!
//! Level `i` maps `block_out_channels[i-1] → block_out_channels[i]` (level 0 starts from
//! `block_out_channels[0]`), with a stride-2 downsampler on all levels but the last.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{Conv2d, ConvInput, GroupNorm};

use crate::config::VqModelConfig;
use crate::down_block::DownEncoderBlock;
use crate::error::Result;
use crate::mid_block::MidBlock;
use crate::weights::{conv2d, group_norm};

/// Images `(B, in_channels, H, W)` → latents `(B, latent_channels, H/f, W/f)`.
#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: Conv2d,
    down_blocks: Vec<DownEncoderBlock>,
    mid_block: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    /// Builds the encoder from the weights under `vb` (`encoder`).
    pub fn new(vb: VarBuilder, config: &VqModelConfig) -> Result<Self> {
        let channels = &config.block_out_channels;
        let groups = config.norm_num_groups;
        let conv_in = conv2d(&vb.pp("conv_in"), config.in_channels, channels[0], 3, 1, 1)?;
        let mut down_blocks = Vec::with_capacity(channels.len());
        let mut c_out = channels[0];
        for (i, block_type) in config.down_block_types.iter().enumerate() {
            let c_in = c_out;
            c_out = channels[i];
            let is_final = i + 1 == channels.len();
            down_blocks.push(DownEncoderBlock::new(
                vb.pp("down_blocks").pp(i),
                c_in,
                c_out,
                config.layers_per_block,
                groups,
                block_type.has_attention(),
                !is_final,
            )?);
        }
        let deepest = *channels.last().expect("validated: at least one level");
        Ok(Self {
            conv_in,
            down_blocks,
            mid_block: MidBlock::new(
                vb.pp("mid_block"),
                deepest,
                groups,
                config.mid_block_add_attention,
            )?,
            conv_norm_out: group_norm(&vb.pp("conv_norm_out"), groups, deepest)?,
            conv_out: conv2d(&vb.pp("conv_out"), deepest, config.latent_channels, 3, 1, 1)?,
        })
    }

    /// The encoder levels.
    pub fn down_blocks(&self) -> &[DownEncoderBlock] {
        &self.down_blocks
    }

    /// The bottleneck block.
    pub fn mid_block(&self) -> &MidBlock {
        &self.mid_block
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.apply(&self.conv_in)?;
        for block in &self.down_blocks {
            h = h.apply(block)?;
        }
        let h = h.apply(&self.mid_block)?;
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
