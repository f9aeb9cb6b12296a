//! `Downsample2D(use_conv=True, padding=0)` of diffusers (`diffusers/models/downsampling.py`),
//! identical to taming's `Downsample`: zero-pad right and bottom by one pixel
//! (`F.pad(x, (0, 1, 0, 1))`), then a 3×3 convolution with stride 2 and no padding
//! (docs/reference-behaviour.md §4.2). Key: `downsamplers.0.conv`.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::Conv2d;

use crate::error::Result;
use crate::weights::conv2d;

/// Halves the spatial size with an asymmetrically padded stride-2 convolution.
#[derive(Debug, Clone)]
pub struct Downsample2D {
    conv: Conv2d,
}

impl Downsample2D {
    /// Builds the block from the weights under `vb` (`...downsamplers.0`).
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            conv: conv2d(&vb.pp("conv"), channels, channels, 3, 2, 0)?,
        })
    }
}

impl Module for Downsample2D {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.pad_with_zeros(3, 0, 1)?
            .pad_with_zeros(2, 0, 1)?
            .apply(&self.conv)
    }
}
