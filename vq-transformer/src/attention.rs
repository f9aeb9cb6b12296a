//! `Attention` with diffusers' default processor (docs/reference-behaviour.md §3.5): `to_q`, `to_k`, `to_v`,
//! `to_out.0`, heads split from consecutive channel blocks, `softmax(Q Kᵀ / √d) V`, no mask.
//!
//! For cross-attention the keys/values of the text states depend only on the prompt:
//! [`Attention::key_value`] computes them once, in the head layout, and
//! [`Attention::forward_kv`] reuses them at every denoising step.

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;

use crate::Result;
use crate::layers::{Linear, cast, dropout, softmax_last_dim};

/// Keys and values in head layout `(B, H, L, d)`, contiguous.
#[derive(Debug, Clone)]
pub struct KeyValue {
    /// Keys `(B, H, L, d)`.
    pub k: Tensor,
    /// Values `(B, H, L, d)`.
    pub v: Tensor,
}

/// Multi-head (self- or cross-) attention.
#[derive(Debug, Clone)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
    dropout: f64,
    upcast: bool,
}

impl Attention {
    /// Loads `to_q` `(H·d, query_dim)`, `to_k`/`to_v` `(H·d, context_dim)` (biases when
    /// `bias`) and `to_out.0` `(query_dim, H·d)` (bias when `out_bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: usize,
        heads: usize,
        head_dim: usize,
        bias: bool,
        out_bias: bool,
        dropout: f64,
        upcast: bool,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Self {
            to_q: Linear::new(vb.pp("to_q"), query_dim, inner, bias)?,
            to_k: Linear::new(vb.pp("to_k"), context_dim, inner, bias)?,
            to_v: Linear::new(vb.pp("to_v"), context_dim, inner, bias)?,
            to_out: Linear::new(vb.pp("to_out").pp("0"), inner, query_dim, out_bias)?,
            heads,
            head_dim,
            dropout,
            upcast,
        })
    }

    /// `(B, L, H·d)` → `(B, H, L, d)` contiguous, times `scale`.
    fn split_heads(&self, x: &Tensor, scale: f64) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let x = x
            .reshape((b, l, self.heads, self.head_dim))?
            .transpose(1, 2)?;
        Ok(if scale == 1.0 {
            x.contiguous()?
        } else {
            x.affine(scale, 0.0)?
        })
    }

    /// Keys and values of `context` `(B, L, context_dim)`.
    pub fn key_value(&self, context: &Tensor) -> Result<KeyValue> {
        Ok(KeyValue {
            k: self.split_heads(&self.to_k.forward(context)?, 1.0)?,
            v: self.split_heads(&self.to_v.forward(context)?, 1.0)?,
        })
    }

    /// Attention of `x` `(B, N, query_dim)` to `context` (`None` = self-attention).
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let kv = self.key_value(context.unwrap_or(x))?;
        self.forward_kv(x, &kv, train)
    }

    /// Attention of `x` to precomputed keys/values.
    pub fn forward_kv(&self, x: &Tensor, kv: &KeyValue, train: bool) -> Result<Tensor> {
        self.forward_kv_masked(x, kv, None, train)
    }

    /// Attention with an additive score mask `(N, L)` (0 where allowed, `-inf` where not;
    /// e.g. a causal mask for autoregressive baselines). diffusers' VQ-Diffusion uses none.
    pub fn forward_kv_masked(
        &self,
        x: &Tensor,
        kv: &KeyValue,
        mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let dtype = x.dtype();
        let q = self.split_heads(&self.to_q.forward(x)?, (self.head_dim as f64).powf(-0.5))?;
        let upcast = self.upcast && matches!(dtype, DType::F16 | DType::BF16);
        let (q, k) = if upcast {
            (q.to_dtype(DType::F32)?, kv.k.to_dtype(DType::F32)?)
        } else {
            (q, kv.k.clone())
        };
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(&cast(m, scores.dtype())?)?,
            None => scores,
        };
        let probs = cast(&softmax_last_dim(&scores, train)?, dtype)?;
        let o = probs.matmul(&kv.v)?; // (B, H, N, d)
        let o = o
            .transpose(1, 2)?
            .reshape((b, n, self.heads * self.head_dim))?;
        let out = self.to_out.forward(&o)?;
        dropout(&out, self.dropout, train)
    }
}
