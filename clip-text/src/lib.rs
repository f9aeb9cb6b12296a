//! OpenAI CLIP's text side as VQ-Diffusion uses it: the BPE tokenizer of transformers'
//! `CLIPTokenizer` (built on the `tokenizers` crate, from `tokenizer.json` or from the slow-tokenizer
//! files `vocab.json` + `merges.txt`) and the text transformer of `CLIPTextModel`, returning
//! `last_hidden_state`, plus the per-token L2 normalisation of diffusers' `VQDiffusionPipeline`.
//!
//! ```no_run
//! use candle_core::{DType, Device};
//! use clip_text::{ClipTextModel, ClipTokenizer, l2_normalise_tokens};
//!
//! # fn main() -> clip_text::Result<()> {
//! let snapshot = std::path::Path::new("vq-diffusion-ithq");
//! let tokenizer = ClipTokenizer::from_pretrained(&snapshot.join("tokenizer"))?;
//! let encoder = ClipTextModel::from_pretrained(&snapshot.join("text_encoder"), DType::F32, &Device::Cpu)?;
//! let batch = tokenizer.encode_batch(&["A teddy bear playing in the pool.", ""])?;
//! let ids = batch.to_tensor(&Device::Cpu)?; // (2, 77) u32
//! let hidden = encoder.forward(&ids)?; // (2, 77, 512), last_hidden_state
//! let cond = l2_normalise_tokens(&hidden)?; // what the transformer is conditioned on
//! # let _ = cond;
//! # Ok(())
//! # }
//! ```
//!
//! Numerics: on the fixtures of `fixtures/` the hidden states agree with transformers 5.24 to
//! within the tolerances stated in the crate README; token ids agree exactly.

mod attention;
mod config;
mod embeddings;
mod encoder_layer;
mod error;
mod linear;
mod mlp;
mod normalise;
mod text_cleaning;
mod text_model;
mod tokenizer;
mod weights;

pub use attention::{ClipAttention, causal_mask};
pub use config::{Activation, ClipTextConfig};
pub use embeddings::ClipTextEmbeddings;
pub use encoder_layer::ClipEncoderLayer;
pub use error::{Error, Result};
pub use mlp::{ClipMlp, activate};
pub use normalise::l2_normalise_tokens;
pub use text_cleaning::{TextCleaning, ftfy_fix_text, whitespace_clean};
pub use text_model::ClipTextModel;
pub use tokenizer::{
    ClipTokenizer, EncodedBatch, EncodedPrompt, SpecialTokens, TOKENIZATION_KEY, Truncated,
    Truncation,
};

/// The crate README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// This crate's version (recorded with generated images).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
