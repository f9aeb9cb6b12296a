//! [`LayerNorm`]: `torch.nn.LayerNorm` over the last axis, with or without affine parameters
//! (Ba et al. 2016), fused on the inference path (see [`crate::layer_norm`]).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::Result;
use crate::functional::{cast, layer_norm_as};

/// LayerNorm over the last axis.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    dim: usize,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight`/`bias` `(D,)` when `affine` (fresh: ones and zeros).
    pub fn new(vb: VarBuilder, dim: usize, eps: f64, affine: bool) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(vb.get_with_hints(dim, "weight", Init::Const(1.0))?),
                Some(vb.get_with_hints(dim, "bias", Init::Const(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            weight,
            bias,
            dim,
            eps,
        })
    }

    /// A norm from its tensors.
    pub fn from_tensors(weight: Tensor, bias: Tensor, eps: f64) -> Result<Self> {
        let dim = weight.dim(0)?;
        Ok(Self {
            weight: Some(weight),
            bias: Some(bias),
            dim,
            eps,
        })
    }

    /// Normalises `x` (training mode picks the differentiable composite formula).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_as(x, x.dtype(), train)
    }

    /// As [`LayerNorm::forward_t`], the result in `dtype` (see [`crate::layer_norm_as`]).
    pub fn forward_as(&self, x: &Tensor, dtype: candle_core::DType, train: bool) -> Result<Tensor> {
        let compute = x.dtype();
        let w = match &self.weight {
            Some(w) => cast(w, compute)?,
            None => Tensor::ones(self.dim, compute, x.device())?,
        };
        let b = match &self.bias {
            Some(b) => cast(b, compute)?,
            None => Tensor::zeros(self.dim, compute, x.device())?,
        };
        layer_norm_as(x, &w, &b, self.eps, dtype, train)
    }
}
