//! `FeedForward` (docs/reference-behaviour.md §3.6): `net.0` (activation module with `proj`), `net.1` dropout,
//! `net.2` output linear. VQ-Diffusion's `"geglu-approximate"` is **not gated**:
//! `z = proj(x); z · sigmoid(1.702 z)` (`ApproximateGELU`).

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;

use crate::Result;
use crate::config::Activation;
use vq_nn::{Linear, dropout};

/// Position-wise MLP `D → 4D → D`.
#[derive(Debug, Clone)]
pub struct FeedForward {
    proj: Linear,
    out: Linear,
    activation: Activation,
    dropout: f64,
}

impl FeedForward {
    /// Loads `net.0.proj` and `net.2` (with biases).
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        inner_dim: usize,
        activation: Activation,
        dropout: f64,
    ) -> Result<Self> {
        let proj_out = match activation {
            Activation::Geglu => 2 * inner_dim,
            _ => inner_dim,
        };
        Ok(Self {
            proj: Linear::new(vb.pp("net").pp("0").pp("proj"), dim, proj_out, true)?,
            out: Linear::new(vb.pp("net").pp("2"), inner_dim, dim, true)?,
            activation,
            dropout,
        })
    }

    /// This module with both projections in 8 bits ([`Linear::to_int8`]).
    pub fn to_int8(&self) -> Result<Self> {
        Ok(Self {
            proj: self.proj.to_int8()?,
            out: self.out.to_int8()?,
            ..self.clone()
        })
    }

    /// The activation module `net.0` (projection included).
    fn activate(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.activation == Activation::ApproximateGelu {
            // The activation is applied to the projection's output buffer in place, written in
            // the dtype the output projection reads best.
            let dtype = match self.out.input_dtype() {
                DType::BF16 => DType::BF16,
                _ => DType::F32,
            };
            return Ok(self.proj.forward_approx_gelu_as(x, dtype, train)?);
        }
        let z = self.proj.forward(x)?;
        Ok(match self.activation {
            Activation::ApproximateGelu => unreachable!("handled above"),
            Activation::Gelu => z.gelu_erf()?,
            Activation::GeluTanh => z.gelu()?,
            Activation::Geglu => {
                let half = z.dim(candle_core::D::Minus1)? / 2;
                let h = z.narrow(candle_core::D::Minus1, 0, half)?;
                let gate = z.narrow(candle_core::D::Minus1, half, half)?;
                (h * gate.gelu_erf()?)?
            }
        })
    }

    /// The dtype the feed-forward reads best given activations of `activation` dtype (see
    /// [`crate::Attention::input_dtype`]).
    pub fn input_dtype(&self, activation: DType) -> DType {
        if activation == DType::F32 && self.proj.input_dtype() == DType::BF16 {
            DType::BF16
        } else {
            activation
        }
    }

    /// `net.2(dropout(net.0(x)))`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.activate(x, train)?;
        let h = dropout(&h, self.dropout, train)?;
        Ok(self.out.forward(&h)?)
    }

    /// `residual + forward(x)`, the residual added inside the output GEMM on the inference
    /// path.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.activate(x, train)?;
        let h = dropout(&h, self.dropout, train)?;
        Ok(self.out.forward_residual(&h, residual)?)
    }
}
