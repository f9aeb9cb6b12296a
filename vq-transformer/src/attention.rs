//! `Attention` with diffusers' default processor (docs/reference-behaviour.md §3.5): `to_q`,
//! `to_k`, `to_v`, `to_out.0`, heads split from consecutive channel blocks,
//! `softmax(Q Kᵀ / √d) V`, no mask.
//!
//! The attention itself is [`vq_nn::multi_head_attention`] (a fused, tiled CPU kernel on the
//! inference path, with bf16 products when the weights are stored as bf16 and the backend
//! multiplies bf16 natively); the output projection adds the residual in its GEMM
//! ([`Attention::forward_kv_residual`]). For cross-attention the keys/values of the text states
//! depend only on the prompt: [`Attention::key_value`] computes them once and
//! [`Attention::forward_kv`] reuses them at every denoising step.

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{AttentionPrecision, Linear, dropout, multi_head_attention};

use crate::Result;

/// Projected keys and values `(B, L, H·d)` (heads in consecutive channel blocks).
#[derive(Debug, Clone)]
pub struct KeyValue {
    /// Keys `(B, L, H·d)`.
    pub k: Tensor,
    /// Values `(B, L, H·d)`.
    pub v: Tensor,
}

impl KeyValue {
    /// Rows `start..start + len` of the batch.
    pub fn narrow(&self, start: usize, len: usize) -> Result<Self> {
        Ok(Self {
            k: self.k.narrow(0, start, len)?,
            v: self.v.narrow(0, start, len)?,
        })
    }
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

    /// Self-attention of width `dim` in the original VQ-Diffusion's names (`FullAttention`:
    /// `query`, `key`, `value`, `proj`, all with biases; same arithmetic as diffusers').
    pub fn original(vb: VarBuilder, dim: usize, heads: usize) -> Result<Self> {
        let head_dim = dim / heads.max(1);
        Ok(Self {
            to_q: Linear::new(vb.pp("query"), dim, dim, true)?,
            to_k: Linear::new(vb.pp("key"), dim, dim, true)?,
            to_v: Linear::new(vb.pp("value"), dim, dim, true)?,
            to_out: Linear::new(vb.pp("proj"), dim, dim, true)?,
            heads,
            head_dim,
            dropout: 0.0,
            upcast: false,
        })
    }

    /// This module with its four projections in 8 bits ([`Linear::to_int8`]).
    pub fn to_int8(&self) -> Result<Self> {
        Ok(Self {
            to_q: self.to_q.to_int8()?,
            to_k: self.to_k.to_int8()?,
            to_v: self.to_v.to_int8()?,
            to_out: self.to_out.to_int8()?,
            ..self.clone()
        })
    }

    /// Whether [`Attention::to_int8`] made this module.
    pub fn has_int8_weights(&self) -> bool {
        self.to_q.int8_weight().is_some()
    }

    /// Keys and values of `context` `(B, L, context_dim)`.
    pub fn key_value(&self, context: &Tensor) -> Result<KeyValue> {
        Ok(KeyValue {
            k: self.to_k.forward(context)?,
            v: self.to_v.forward(context)?,
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

    /// The dtype the projections read best given activations of `activation` dtype: bf16
    /// when the weights are bf16 and multiplied natively (a norm can then write bf16
    /// directly), else `activation`.
    pub fn input_dtype(&self, activation: DType) -> DType {
        if activation == DType::F32 && self.to_q.input_dtype() == DType::BF16 {
            DType::BF16
        } else {
            activation
        }
    }

    fn precision(&self) -> AttentionPrecision {
        match self.to_q.weight().map(Tensor::dtype) {
            Some(DType::BF16) => AttentionPrecision::Bf16,
            _ => AttentionPrecision::F32,
        }
    }

    /// `softmax(q kᵀ/√d + mask) v` before the output projection, `(B, N, H·d)`.
    fn context(
        &self,
        x: &Tensor,
        kv: &KeyValue,
        mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let q = self.to_q.forward(x)?;
        let upcast = self.upcast && matches!(dtype, DType::F16 | DType::BF16);
        let (q, k, v) = if upcast {
            (
                q.to_dtype(DType::F32)?,
                kv.k.to_dtype(DType::F32)?,
                kv.v.to_dtype(DType::F32)?,
            )
        } else {
            (q, kv.k.clone(), kv.v.clone())
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        let o = multi_head_attention(&q, &k, &v, self.heads, scale, mask, self.precision(), train)?;
        // bf16 projection inputs come with f32 activations: keep the f32 output (the output
        // projection converts it as it reads it).
        if dtype == DType::BF16
            && o.dtype() == DType::F32
            && self.to_out.input_dtype() == DType::BF16
        {
            return Ok(o);
        }
        Ok(o.to_dtype(dtype)?)
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
        let o = self.context(x, kv, mask, train)?;
        let out = self.to_out.forward(&o)?;
        Ok(dropout(&out, self.dropout, train)?)
    }

    /// `residual + attention(x, kv)`: the residual connection of a block, added inside the
    /// output projection's GEMM on the inference path.
    pub fn forward_kv_residual(
        &self,
        x: &Tensor,
        kv: &KeyValue,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let o = self.context(x, kv, None, train)?;
        if train && self.dropout > 0.0 {
            let out = dropout(&self.to_out.forward(&o)?, self.dropout, train)?;
            return Ok((out + residual)?);
        }
        Ok(self.to_out.forward_residual(&o, residual)?)
    }
}
