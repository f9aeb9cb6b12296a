//! Multi-head causal self-attention of transformers' `CLIPAttention` (eager path):
//! `softmax(q kᵀ · d_h^-½ + causal_mask) v`, heads split from `q_proj`/`k_proj`/`v_proj` and merged
//! into `out_proj`. The causal mask is the additive `(seq, seq)` matrix of
//! `_create_4d_causal_attention_mask` (`finfo.min` above the diagonal). No padding mask: the VQ-Diffusion
//! pipeline passes none (`docs/reference-behaviour.md` §1.2).
//!
//! Scores are computed in f32. The fused `softmax_last_dim` (no backward) is used only when the
//! scores do not track gradients.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::ClipTextConfig;
use crate::linear::Linear;

/// The additive causal mask `(seq, seq)`: 0 on and below the diagonal, `f32::MIN` above.
pub fn causal_mask(seq: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j > i { f32::MIN } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (seq, seq), device)
}

/// Softmax over the last dimension: fused kernel for inference, composite when training.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(&x.contiguous()?)
    }
}

/// `layers.{i}.self_attn`.
#[derive(Debug, Clone)]
pub struct ClipAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
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
        Ok(Self {
            q_proj: Linear::new(vb.pp("q_proj"), d, d, in_std)?,
            k_proj: Linear::new(vb.pp("k_proj"), d, d, in_std)?,
            v_proj: Linear::new(vb.pp("v_proj"), d, d, in_std)?,
            out_proj: Linear::new(vb.pp("out_proj"), d, d, out_std)?,
            num_heads: config.num_attention_heads,
            head_dim: config.head_dim(),
        })
    }

    /// `(batch, seq, d)` → `(batch, seq, d)`; `mask` is an additive `(seq, seq)` f32 matrix.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq, d) = x.dims3()?;
        let dtype = x.dtype();
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((batch, seq, self.num_heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?
                .to_dtype(DType::F32)
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        let q = split(self.q_proj.forward(x)?)?;
        let k = split(self.k_proj.forward(x)?)?;
        let v = split(self.v_proj.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let probs = softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, seq, d))?
            .to_dtype(dtype)?;
        self.out_proj.forward(&context)
    }
}
