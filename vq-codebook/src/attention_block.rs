//! The VAE's spatial self-attention block: diffusers' `Attention(..., heads=1, dim_head=C,
//! norm_num_groups, eps=1e-6, bias=True, residual_connection=True, upcast_softmax=True,
//! _from_deprecated_attn_block=True)` with `AttnProcessor2_0` (`diffusers/models/attention_processor.py`),
//! equal to taming's `AttnBlock` (docs/reference-behaviour.md §4.2):
//!
//! `x → (B, C, HW) → GroupNorm → tokens (B, HW, C) → q, k, v = Linear(C→C) →
//! softmax(q kᵀ / √C) v → to_out.0 → (B, C, H, W) → + x`.
//!
//! Weight keys: current diffusers `group_norm, to_q, to_k, to_v, to_out.0`; the hub's ITHQ file
//! (diffusers 0.8 conversion) uses the deprecated `query, key, value, proj_attn`. Both are
//! accepted, as are `(C, C, 1, 1)` convolution-shaped projection weights.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use vq_nn::{AttentionPrecision, GroupNorm, Linear, multi_head_attention};

use crate::error::Result;
use crate::weights::{group_norm, linear_square};

/// Which spelling of the attention keys a weight file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKeys {
    /// `to_q, to_k, to_v, to_out.0` (current diffusers, also used for new parameters).
    Current,
    /// `query, key, value, proj_attn` (diffusers ≤ 0.14 files, the ITHQ hub checkpoint).
    Legacy,
}

impl AttentionKeys {
    /// `(q, k, v, out)` key names.
    pub fn names(self) -> [&'static str; 4] {
        match self {
            AttentionKeys::Current => ["to_q", "to_k", "to_v", "to_out.0"],
            AttentionKeys::Legacy => ["query", "key", "value", "proj_attn"],
        }
    }
}

/// Single-head spatial self-attention with a residual connection.
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    scale: f64,
    keys: AttentionKeys,
}

impl AttentionBlock {
    /// Builds the block from the weights under `vb` (`...attentions.{j}`), detecting the key
    /// spelling: legacy names are used only when `query.weight` is present and `to_q.weight` is not.
    pub fn new(vb: VarBuilder, channels: usize, groups: usize) -> Result<Self> {
        let keys = if !vb.contains_tensor("to_q.weight") && vb.contains_tensor("query.weight") {
            AttentionKeys::Legacy
        } else {
            AttentionKeys::Current
        };
        let [q, k, v, out] = keys.names();
        Ok(Self {
            group_norm: group_norm(&vb.pp("group_norm"), groups, channels)?,
            to_q: linear_square(&vb.pp(q), channels)?,
            to_k: linear_square(&vb.pp(k), channels)?,
            to_v: linear_square(&vb.pp(v), channels)?,
            to_out: linear_square(&vb.pp(out), channels)?,
            scale: 1.0 / (channels as f64).sqrt(),
            keys,
        })
    }

    /// The key spelling found in the weights.
    pub fn keys(&self) -> AttentionKeys {
        self.keys
    }
}

impl Module for AttentionBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let tokens = self
            .group_norm
            .forward_t(&x.reshape((b, c, h * w))?, false)
            .map_err(vq_nn::Error::into_candle)?
            .transpose(1, 2)?
            .contiguous()?;
        let q = tokens.apply(&self.to_q)?;
        let k = tokens.apply(&self.to_k)?;
        let v = tokens.apply(&self.to_v)?;
        // One head of width C; the fused kernel on the CPU at inference, the differentiable
        // composite (with the composite softmax) while training.
        let attended = multi_head_attention(
            &q,
            &k,
            &v,
            1,
            self.scale,
            None,
            AttentionPrecision::F32,
            false,
        )
        .map_err(vq_nn::Error::into_candle)?;
        let out = attended.apply(&self.to_out)?;
        let out = out.transpose(1, 2)?.reshape((b, c, h, w))?;
        out + x
    }
}
