//! # vq-codebook
//!
//! diffusers' `VQModel` — the VQ-GAN that turns 256×256 images into 32×32 grids of codebook
//! tokens and back in VQ-Diffusion (ITHQ: f = 8, channels 64/128/256/512, attention at the 32×32
//! level, a 4096 × 128 codebook) — on [candle](https://docs.rs/candle-core), plus a trainer for
//! small VQ-VAEs of the same architecture.
//!
//! * Modules mirror diffusers' and load its state dicts with no renaming:
//!   `encoder.down_blocks.{i}.resnets.{j}.norm1.weight`, `decoder.up_blocks...`,
//!   `quant_conv`, `quantize.embedding.weight`, `post_quant_conv`; attention blocks accept the
//!   current `to_q/to_k/to_v/to_out.0` keys and the hub file's legacy `query/key/value/proj_attn`.
//! * Weights: safetensors (memory-mapped) or PyTorch `.bin`, f32/f16/bf16, computed in f32.
//! * [`VqModel::encode`] (images → tokens), [`VqModel::decode_tokens`] (tokens → images, the
//!   pipeline's path), [`VqModel::codebook_entry`], and [`load_image`] / [`save_png`] for PNG ⇄
//!   tensor with diffusers' scaling and rounding (host tensors).
//! * [`Trainer`]: straight-through estimator, commitment/codebook losses (β, diffusers' `legacy`
//!   flag), EMA codebook (default) or gradient codebook, dead-code restarts, usage statistics,
//!   atomic resumable checkpoints.
//!
//! Numerics follow docs/reference-behaviour.md §4: GroupNorm ε = 1e-6, SiLU, nearest upsampling, asymmetric
//! zero padding before the stride-2 convolutions, single-head attention scaled by `1/√C`.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vq_codebook::{DownBlockType, UpBlockType, VqModel, VqModelConfig};
//!
//! # fn main() -> vq_codebook::Result<()> {
//! // A tiny model with random weights (load real ones with `VqModel::from_pretrained`).
//! let config = VqModelConfig {
//!     block_out_channels: vec![8, 16],
//!     down_block_types: vec![DownBlockType::DownEncoderBlock2D, DownBlockType::AttnDownEncoderBlock2D],
//!     up_block_types: vec![UpBlockType::AttnUpDecoderBlock2D, UpBlockType::UpDecoderBlock2D],
//!     norm_num_groups: 4,
//!     latent_channels: 4,
//!     num_vq_embeddings: 16,
//!     ..VqModelConfig::default()
//! };
//! let varmap = VarMap::new();
//! let model = VqModel::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &config)?;
//! let images = Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu)?;
//! let tokens = model.encode(&images)?; // (1, 4, 4) u32
//! assert_eq!(tokens.dims(), &[1, 4, 4]);
//! let decoded = model.decode_tokens(&tokens)?; // (1, 3, 8, 8)
//! assert_eq!(decoded.dims(), &[1, 3, 8, 8]);
//! // Wrong sizes are reported, not mis-decoded:
//! assert!(model.encode(&Tensor::zeros((1, 3, 7, 8), DType::F32, &Device::Cpu)?).is_err());
//! # Ok(())
//! # }
//! ```

mod attention_block;
mod checkpoint;
mod codebook_usage;
mod config;
mod decoder;
mod down_block;
mod downsample;
mod ema_codebook;
mod encoder;
mod error;
mod image_io;
mod init;
mod mid_block;
mod reconstruction_loss;
mod resnet_block;
mod synthetic;
mod training;
mod up_block;
mod upsample;
mod vector_quantizer;
mod vq_model;
mod weights;

pub use attention_block::{AttentionBlock, AttentionKeys};
pub use checkpoint::{CHECKPOINT_FORMAT, Checkpoint, temp_path};
pub use codebook_usage::{CodebookUsage, UsageTracker};
pub use config::{DownBlockType, UpBlockType, VqModelConfig};
pub use decoder::Decoder;
pub use down_block::DownEncoderBlock;
pub use downsample::Downsample2D;
pub use ema_codebook::EmaCodebook;
pub use encoder::Encoder;
pub use error::{Error, Result};
pub use image_io::{
    image_to_tensor, images_to_tensor, load_folder, load_image, save_png, tensor_to_image,
    tensor_to_images, to_u8,
};
pub use init::{CODEBOOK_KEY, seeded_init};
pub use mid_block::MidBlock;
pub use reconstruction_loss::{ReconstructionLoss, salience_weights};
pub use resnet_block::ResnetBlock2D;
pub use synthetic::synthetic_images;
pub use training::{
    CodebookUpdate, EvalReport, StepLog, TrainConfig, Trainer, checkpoint_path, evaluate,
};
pub use up_block::UpDecoderBlock;
pub use upsample::{Upsample2D, upsample_nearest_2x};
pub use vector_quantizer::{Quantised, VectorQuantizer};
pub use vq_model::{TrainForward, VqModel};
pub use weights::GROUP_NORM_EPS;

/// The crate README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// This crate's version (recorded with generated images).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
