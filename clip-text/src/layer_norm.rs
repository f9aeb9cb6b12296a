//! LayerNorm over the last dimension, `y = (x - mean) / sqrt(var + eps) * weight + bias` with the
//! biased variance (PyTorch `nn.LayerNorm`, which transformers' `CLIPEncoderLayer` uses as
//! `layer_norm1`/`layer_norm2` and `CLIPTextTransformer.final_layer_norm`).
//!
//! candle's fused `ops::layer_norm` has no backward (see `docs/candle-notes.md` §4.5), so the fused
//! kernel is used only when neither the input nor the parameters track gradients; otherwise the
//! composite formula runs, which every parameter can be trained through.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// A LayerNorm with weight and bias (transformers keys `<prefix>.weight`, `<prefix>.bias`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads (or, on a `VarMap`, creates as ones/zeros) the parameters under `vb`.
    pub fn new(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    /// Builds the norm from tensors.
    pub fn from_tensors(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self { weight, bias, eps }
    }

    /// The composite (differentiable) form, computed in f32.
    pub fn forward_composite(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let w = self.weight.to_dtype(DType::F32)?;
        let b = self.bias.to_dtype(DType::F32)?;
        normed.broadcast_mul(&w)?.broadcast_add(&b)?.to_dtype(dtype)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.track_op() || self.weight.track_op() || self.bias.track_op() {
            self.forward_composite(x)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_and_composite_agree() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (2, 5, 16), &dev)?;
        let w = Tensor::randn(1f32, 0.1, 16, &dev)?;
        let b = Tensor::randn(0f32, 0.1, 16, &dev)?;
        let ln = LayerNorm::from_tensors(w, b, 1e-5);
        let fused = ln.forward(&x)?;
        let composite = ln.forward_composite(&x)?;
        let diff = (fused - composite)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn gradients_flow_on_the_training_path() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::ones(8, DType::F32, &dev)?;
        let b = Var::zeros(8, DType::F32, &dev)?;
        let ln = LayerNorm::from_tensors(w.as_tensor().clone(), b.as_tensor().clone(), 1e-5);
        let x = Tensor::randn(0f32, 1.0, (3, 8), &dev)?;
        let target = Tensor::randn(0f32, 1.0, (3, 8), &dev)?;
        let loss = (ln.forward(&x)? - target)?.sqr()?.sum_all()?;
        let grads = loss.backward()?;
        for v in [&w, &b] {
            let g = grads.get(v).expect("gradient");
            assert!(g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        }
        Ok(())
    }
}
