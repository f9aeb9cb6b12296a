//! `Conv_MLP` of the original VQ-Diffusion's class-conditional blocks (microsoft/VQ-Diffusion
//! `transformer_utils.py`): the tokens `(B, N, D)` as a `(B, D, h, h)` image (row-major,
//! `h = √N`), a 3×3 convolution `D → m·D` (zero padding 1), GELU2 (`x·σ(1.702x)`), a 3×3
//! convolution back to `D`, and back to tokens.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{Conv2d, approx_gelu};

use crate::Result;

/// The convolutional feed-forward (`mlp.conv1`, `mlp.conv2`).
#[derive(Debug, Clone)]
pub struct ConvMlp {
    conv1: Conv2d,
    conv2: Conv2d,
    side: usize,
}

impl ConvMlp {
    /// Loads `conv1` `(m·D, D, 3, 3)` and `conv2` `(D, m·D, 3, 3)` for a `side × side` grid.
    pub fn new(vb: VarBuilder, dim: usize, hidden_times: usize, side: usize) -> Result<Self> {
        Ok(Self {
            conv1: Conv2d::new(vb.pp("conv1"), dim, hidden_times * dim, 3, 1, 1)?,
            conv2: Conv2d::new(vb.pp("conv2"), hidden_times * dim, dim, 3, 1, 1)?,
            side,
        })
    }

    /// `x` `(B, N, D)` → `(B, N, D)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }

    /// [`ConvMlp::forward`], with differentiable kernels only when `train`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let image = x
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, d, self.side, self.side))?;
        let h = approx_gelu(&self.conv1.forward(&image)?, train)?;
        let out = self.conv2.forward(&h)?;
        Ok(out.reshape((b, d, n))?.transpose(1, 2)?.contiguous()?)
    }
}
