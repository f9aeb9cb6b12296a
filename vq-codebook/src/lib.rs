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
//!   pipeline's path), [`VqModel::codebook_entry`], and [`image_io`] for PNG ⇄ tensor with
//!   diffusers' scaling and rounding.
//! * [`Trainer`]: straight-through estimator, commitment/codebook losses (β, diffusers' `legacy`
//!   flag), EMA codebook (default) or gradient codebook, dead-code restarts, usage statistics,
//!   atomic resumable checkpoints.
//!
//! Numerics follow reference doc §4: GroupNorm ε = 1e-6, SiLU, nearest upsampling, asymmetric
//! zero padding before the stride-2 convolutions, single-head attention scaled by `1/√C`.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vq_codebook::{DownBlockType, UpBlockType, VqModel, VqModelConfig};
//!
//! # fn main() -> vq_codebook::Result<()> {
//! // A tiny model with random weights (load real ones with `VqModel::load(dir)`).
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

pub mod attention_block;
pub mod checkpoint;
pub mod codebook_usage;
pub mod config;
pub mod decoder;
pub mod down_block;
pub mod downsample;
pub mod ema_codebook;
pub mod encoder;
pub mod error;
pub mod image_io;
pub mod init;
pub mod mid_block;
pub mod reconstruction_loss;
pub mod resnet_block;
pub mod synthetic;
pub mod training;
pub mod up_block;
pub mod upsample;
pub mod vector_quantizer;
pub mod vq_model;
mod weights;

pub use attention_block::{AttentionBlock, AttentionKeys};
pub use checkpoint::Checkpoint;
pub use codebook_usage::{CodebookUsage, UsageTracker};
pub use config::{DownBlockType, UpBlockType, VqModelConfig};
pub use decoder::Decoder;
pub use ema_codebook::EmaCodebook;
pub use encoder::Encoder;
pub use error::{Error, Result};
pub use reconstruction_loss::ReconstructionLoss;
pub use training::{CodebookUpdate, EvalReport, StepLog, TrainConfig, Trainer, evaluate};
pub use vector_quantizer::{Quantized, VectorQuantizer};
pub use vq_model::{TrainForward, VqModel};
pub use weights::GROUP_NORM_EPS;
