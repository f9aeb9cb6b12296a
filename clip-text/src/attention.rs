//! Multi-head causal self-attention of transformers' `CLIPAttention` (eager path):
//! `softmax(q kᵀ · d_h^-½ + causal_mask) v`, heads split from `q_proj`/`k_proj`/`v_proj` and merged
//! into `out_proj`. The causal mask is the additive `(seq, seq)` matrix of
//! `_create_4d_causal_attention_mask` (`finfo.min` above the diagonal). No padding mask: the VQ-Diffusion
//! pipeline passes none (`docs/reference-behaviour.md` §1.2).
//!
//! The attention is [`vq_nn::multi_head_attention`] (a fused kernel on the CPU that never splits
//! heads or materialises the scores; the differentiable composite when gradients are tracked),
//! and the encoder layer's residual sum is fused into `out_proj`. Loaded (not trainable)
//! weights have their three input projections stacked into one `(3d, d)` product, whose column
//! blocks the attention reads in place: one GEMM instead of three small ones.

use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{AttentionPrecision, Linear, multi_head_attention};

use crate::config::ClipTextConfig;
use crate::error::Result;
use crate::linear::linear;

/// The additive causal mask `(seq, seq)`: 0 on and below the diagonal, `f32::MIN` above.
pub fn causal_mask(seq: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j > i { f32::MIN } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(values, (seq, seq), device)?)
}

/// The `q`, `k`, `v` projections.
#[derive(Debug, Clone)]
enum Projections {
    /// Three layers (trainable parameters).
    Separate { q: Linear, k: Linear, v: Linear },
    /// One layer of the three stacked along the output axis (loaded weights).
    Stacked(Linear),
}

/// `layers.{i}.self_attn`.
#[derive(Debug, Clone)]
pub struct ClipAttention {
    projections: Projections,
    out_proj: Linear,
    num_heads: usize,
    head_dim: usize,
}

impl ClipAttention {
    /// Loads the four `(d, d)` projections; fresh weights use transformers' stds
    /// (`q,k,v`: `d^-½ (2L)^-½`, `out`: `d^-½`, times `initializer_factor`).
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        let d = config.hidden_size;
        let factor = config.initializer_factor;
        let in_std = (d as f64).powf(-0.5)
            * (2.0 * config.num_hidden_layers.max(1) as f64).powf(-0.5)
            * factor;
        let out_std = (d as f64).powf(-0.5) * factor;
        let q = linear(vb.pp("q_proj"), d, d, in_std)?;
        let k = linear(vb.pp("k_proj"), d, d, in_std)?;
        let v = linear(vb.pp("v_proj"), d, d, in_std)?;
        let trainable = [&q, &k, &v].iter().any(|l| {
            l.weight().is_some_and(|w| w.is_variable()) || l.bias().is_some_and(|b| b.is_variable())
        });
        let projections = if trainable {
            Projections::Separate { q, k, v }
        } else {
            let stack = |f: fn(&Linear) -> Option<&Tensor>| -> Result<Option<Tensor>> {
                let parts: Option<Vec<&Tensor>> = [&q, &k, &v].iter().map(|l| f(l)).collect();
                Ok(match parts {
                    Some(parts) => Some(Tensor::cat(&parts, 0)?),
                    None => None,
                })
            };
            // Just loaded: every layer holds its stored weight.
            let weight = stack(Linear::weight)?.expect("a loaded layer stores its weight");
            Projections::Stacked(Linear::from_tensors(weight, stack(|l| l.bias())?))
        };
        Ok(Self {
            projections,
            out_proj: linear(vb.pp("out_proj"), d, d, out_std)?,
            num_heads: config.num_attention_heads,
            head_dim: config.head_dim(),
        })
    }

    /// `(batch, seq, d)` → `(batch, seq, d)`; `mask` is an additive `(seq, seq)` f32 matrix.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        Ok(self.out_proj.forward(&self.attend(x, mask)?)?)
    }

    /// `residual + forward(x, mask)`, the sum computed by the output projection.
    pub fn forward_residual(&self, x: &Tensor, mask: &Tensor, residual: &Tensor) -> Result<Tensor> {
        Ok(self
            .out_proj
            .forward_residual(&self.attend(x, mask)?, residual)?)
    }

    /// The heads' outputs, merged, before `out_proj`.
    fn attend(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let scale = (self.head_dim as f64).powf(-0.5);
        let (q, k, v) = match &self.projections {
            Projections::Separate { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            Projections::Stacked(qkv) => {
                let d = self.num_heads * self.head_dim;
                let qkv = qkv.forward(x)?;
                (
                    qkv.narrow(2, 0, d)?,
                    qkv.narrow(2, d, d)?,
                    qkv.narrow(2, 2 * d, d)?,
                )
            }
        };
        Ok(multi_head_attention(
            &q,
            &k,
            &v,
            self.num_heads,
            scale,
            Some(mask),
            AttentionPrecision::F32,
            false,
        )?)
    }
}
