//! `Upsample2D(use_conv=True)` of diffusers (`diffusers/models/upsampling.py`), identical to
//! taming's `Upsample`: nearest-neighbour ×2 (`F.interpolate(scale_factor=2, mode="nearest")`)
//! followed by a 3×3 convolution with padding 1 (docs/reference-behaviour.md §4.2). Key: `upsamplers.0.conv`.
//!
//! The ×2 repeat is written as broadcast + reshape rather than candle's `upsample_nearest2d`,
//! whose backward overwrites (instead of accumulating) gradients (docs/candle-notes.md §5.2); the
//! values are identical.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{Conv2d, ConvInput};

use crate::error::Result;
use crate::weights::conv2d;

/// Nearest-neighbour ×2 upsampling of a `(B, C, H, W)` tensor, with a correct backward.
pub fn upsample_nearest_2x(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .reshape((b, c, 2 * h, 2 * w))
}

/// Doubles the spatial size: nearest ×2 then a 3×3 convolution.
#[derive(Debug, Clone)]
pub struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    /// Builds the block from the weights under `vb` (`...upsamplers.0`).
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            conv: conv2d(&vb.pp("conv"), channels, channels, 3, 1, 1)?,
        })
    }
}

impl Module for Upsample2D {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // The fused convolution upsamples while it pads its input; elsewhere the same
        // broadcast-and-reshape repeat as `upsample_nearest_2x`.
        let pre = ConvInput {
            upsample: true,
            ..ConvInput::default()
        };
        self.conv
            .forward_with(x, pre, None)
            .map_err(vq_nn::Error::into_candle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candle_nearest() {
        let x = Tensor::arange(0f32, 24., &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 3, 4))
            .unwrap();
        let ours = upsample_nearest_2x(&x).unwrap();
        let candle = x.upsample_nearest2d(6, 8).unwrap();
        let diff = (ours - candle).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }
}
