//! The output head of the vectorized mode (`_get_output_for_vectorized_inputs`,
//! docs/reference-behaviour.md §3.7): `norm_out` (affine LayerNorm), `out` (Linear `D → K−1`), classes moved to axis 1,
//! log-softmax in **f64** then rounded to f32. The mask class is embedded but never predicted.

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;

use crate::Result;
use vq_nn::{LayerNorm, Linear, log_softmax_f64};

/// `norm_out` + `out` + f64 log-softmax.
#[derive(Debug, Clone)]
pub struct OutputHead {
    norm_out: LayerNorm,
    out: Linear,
}

impl OutputHead {
    /// Loads `norm_out.{weight,bias}` and `out.{weight,bias}` (`vb` at the model root).
    pub fn new(vb: VarBuilder, dim: usize, num_classes: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            norm_out: LayerNorm::new(vb.pp("norm_out"), dim, eps, true)?,
            out: Linear::new(vb.pp("out"), dim, num_classes, true)?,
        })
    }

    /// The same head in the original VQ-Diffusion's names: `to_logits.0` (LayerNorm) and
    /// `to_logits.1` (Linear); `vb` at `to_logits`.
    pub fn original(vb: VarBuilder, dim: usize, num_classes: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            norm_out: LayerNorm::new(vb.pp("0"), dim, eps, true)?,
            out: Linear::new(vb.pp("1"), dim, num_classes, true)?,
        })
    }

    /// Raw logits `(B, N, K−1)` in the hidden dtype.
    pub fn logits(&self, h: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.out.forward(&self.norm_out.forward_t(h, train)?)?)
    }

    /// `log p̂(x_0)` `(B, K−1, N)` f32.
    pub fn forward(&self, h: &Tensor, train: bool) -> Result<Tensor> {
        let logits = self.logits(h, train)?;
        let logp = log_softmax_f64(&logits.to_dtype(DType::F32)?, train)?;
        Ok(logp.transpose(1, 2)?.contiguous()?)
    }
}
