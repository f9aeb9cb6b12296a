//! # vq-transformer
//!
//! VQ-Diffusion's denoising network — diffusers' `Transformer2DModel` in its discrete
//! ("vectorized") mode, as used by `microsoft/vq-diffusion-ithq` — on candle.
//!
//! * [`Transformer2DConfig`] reads `transformer/config.json` (diffusers defaults, the
//!   `norm_type → "ada_norm"` rule) and refuses continuous or patched inputs.
//! * Modules mirror diffusers, with identical parameter names:
//!   [`ImagePositionalEmbeddings`] (`latent_image_embedding`), [`BasicTransformerBlock`]
//!   (`transformer_blocks.{i}`: `norm1`/[`AdaLayerNorm`], `attn1`/[`Attention`], `norm2`,
//!   `attn2`, `norm3`, `ff`/[`FeedForward`]) and the [`OutputHead`] (`norm_out`, `out`).
//! * [`Transformer2DModel::forward`]: ids `x_t` `(B, N)`, a [`discrete_diffusion::Timesteps`] (shared, or one per
//!   sample), encoder states `(B, 77, C)` → `log p̂(x_0)` `(B, K−1, N)` f32, log-softmax in
//!   f64 as diffusers.
//! * Inference work is done once per generation: [`Transformer2DModel::prepare_context`]
//!   caches every block's cross-attention keys/values, and
//!   [`Transformer2DModel::guided_log_p_x0`] runs the unconditional and conditional halves of
//!   classifier-free guidance as one batch.
//! * The model implements [`discrete_diffusion::Denoiser`] (see [`Guided`]).
//! * Weights: safetensors (mmap) or PyTorch `.bin`, stored as f32/f16/bf16 (bf16 computes in
//!   f32 on the CPU). Built from a [`candle_nn::VarMap`] it is trainable; dropout is active
//!   only in training mode ([`Transformer2DModel::forward_t`]), and the fused inference
//!   kernels (which have no backward) are used only when no gradient can flow.

mod ada_layer_norm;
mod attention;
mod basic_transformer_block;
mod condition2image;
mod condition2image_config;
mod config;
mod conv_mlp;
mod denoiser;
mod error;
mod feed_forward;
mod image_positional_embeddings;
mod output_head;
mod text_context;
mod transformer_2d;

#[cfg(test)]
mod tests;

pub use ada_layer_norm::AdaLayerNorm;
pub use attention::{Attention, KeyValue};
pub use basic_transformer_block::{BasicTransformerBlock, BlockModulation, BlockNorm, CrossInput};
pub use condition2image::{ClassCondition, Condition2ImageTransformer};
pub use condition2image_config::{
    CLASS_CONDITIONAL_CLASS_NAME, Condition2ImageConfig, UNCONDITIONAL_CLASS_NAME,
};
pub use config::{Activation, NormType, Transformer2DConfig};
pub use conv_mlp::ConvMlp;
pub use denoiser::Guided;
pub use error::{Error, Result};
pub use feed_forward::FeedForward;
pub use image_positional_embeddings::ImagePositionalEmbeddings;
pub use output_head::OutputHead;
pub use text_context::TextContext;
pub use transformer_2d::Transformer2DModel;

/// The crate README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// This crate's version (recorded with generated images).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
