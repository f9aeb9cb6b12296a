//! `ResnetBlock2D` of diffusers (`diffusers/models/resnet.py`) as used by the VQ-VAE: no time
//! embedding, pre-norm, `output_scale_factor = 1`, dropout 0 (docs/reference-behaviour.md §4.2):
//!
//! `h = conv2(SiLU(GN2(conv1(SiLU(GN1(x))))))`, `out = shortcut(x) + h`, where `shortcut` is a
//! 1×1 `conv_shortcut` iff the channel count changes. Keys: `norm1, conv1, norm2, conv2,
//! conv_shortcut` (original taming names `norm1, conv1, norm2, conv2, nin_shortcut`).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{Conv2d, ConvInput, GroupNorm};

use crate::error::Result;
use crate::weights::{conv2d, group_norm};

/// A pre-norm residual block with two 3×3 convolutions.
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock2D {
    /// Builds the block from the weights under `vb` (`...resnets.{j}`).
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize, groups: usize) -> Result<Self> {
        let conv_shortcut = if c_in != c_out {
            Some(conv2d(&vb.pp("conv_shortcut"), c_in, c_out, 1, 1, 0)?)
        } else {
            None
        };
        Ok(Self {
            norm1: group_norm(&vb.pp("norm1"), groups, c_in)?,
            conv1: conv2d(&vb.pp("conv1"), c_in, c_out, 3, 1, 1)?,
            norm2: group_norm(&vb.pp("norm2"), groups, c_out)?,
            conv2: conv2d(&vb.pp("conv2"), c_out, c_out, 3, 1, 1)?,
            conv_shortcut,
        })
    }
}

impl Module for ResnetBlock2D {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let pre = |norm| ConvInput {
            norm: Some(norm),
            silu: true,
            upsample: false,
        };
        let h = self
            .conv1
            .forward_with(x, pre(&self.norm1), None)
            .map_err(vq_nn::Error::into_candle)?;
        let shortcut = match &self.conv_shortcut {
            Some(conv) => x.apply(conv)?,
            None => x.clone(),
        };
        // The residual sum is the output buffer's initial value.
        self.conv2
            .forward_with(&h, pre(&self.norm2), Some(&shortcut))
            .map_err(vq_nn::Error::into_candle)
    }
}
