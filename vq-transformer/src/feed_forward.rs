//! `FeedForward` (docs/reference-behaviour.md §3.6): `net.0` (activation module with `proj`), `net.1` dropout,
//! `net.2` output linear. VQ-Diffusion's `"geglu-approximate"` is **not gated**:
//! `z = proj(x); z · sigmoid(1.702 z)` (`ApproximateGELU`).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::config::Activation;
use crate::layers::{Linear, dropout};
use crate::{Result, kernels};

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

    /// The activation module `net.0` (projection included).
    fn activate(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let z = self.proj.forward(x)?;
        Ok(match self.activation {
            Activation::ApproximateGelu => {
                if !train && !z.track_op() && kernels::supports(&z) {
                    kernels::approx_gelu(&z)?
                } else {
                    (&z * candle_nn::ops::sigmoid(&(&z * 1.702)?)?)?
                }
            }
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

    /// `net.2(dropout(net.0(x)))`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.activate(x, train)?;
        let h = dropout(&h, self.dropout, train)?;
        Ok(self.out.forward(&h)?)
    }
}
