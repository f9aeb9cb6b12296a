//! Training building blocks for VQ-Diffusion models on candle, independent of any dataset or
//! recipe:
//!
//! * [`AdamW`] with its moments saved and restored (an exact resume), the update of
//!   candle-nn's AdamW operation for operation (`vq-nn`'s, saved to files by [`AdamWFile`]);
//! * the VQ-VAE trainer, whose home is `vq-codebook`: [`VqVaeTrainer`], [`VqVaeTrainConfig`];
//! * [`Ema`] of the weights (the original VQ-Diffusion evaluates EMA weights);
//! * [`clip_grad_norm`] (global L2 norm) and [`LrSchedule`] (warm-up + cosine);
//! * crash-safe writes ([`write_atomic`], [`save_tensors_atomic`], [`write_json_atomic`]);
//! * [`ImageFolder`]: captioned images as `metadata.jsonl` (Hugging Face ImageFolder) or
//!   same-name `.txt` files, with a stable validation split and [`fit_image`]; [`ClassFolder`]:
//!   labelled images as one sub-folder per class;
//! * [`Rank`]: data-parallel sharding and per-rank seeds from `RANK` / `WORLD_SIZE`;
//! * [`DenoiserTrainer`] (the VQ-Diffusion objective, condition dropout, importance-sampled
//!   timesteps, exact resume from a checkpoint folder), generic over the model
//!   ([`TrainableDenoiser`]) and the data ([`TokenDataset`]):
//!   * text-to-image: [`TextConditionedModel`] — a [`JointModel`] (text encoder + denoiser +
//!     learned null on one `VarMap`, fresh or from an existing model's weights) and its
//!     tokenizer — on [`TokenData`] (token grids + captions);
//!   * class-conditional or unconditional: [`Condition2ImageModel`] (the original's
//!     `Condition2ImageTransformer` / `UnCondition2ImageTransformer`) on [`ClassTokenData`]
//!     or [`UnconditionalTokenData`], exported by [`export_class_pipeline`].
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vq_train::{AdamW, Ema, ParamsAdamW};
//!
//! # fn main() -> vq_train::Result<()> {
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let w = vb.get_with_hints(3, "w", candle_nn::Init::Const(1.0))?;
//! let mut opt = AdamW::from_varmap(&varmap, ParamsAdamW { lr: 0.1, ..Default::default() })?;
//! let mut ema = Ema::new(&varmap, 0.999)?;
//! for _ in 0..10 {
//!     let loss = w.sqr()?.sum_all()?;
//!     opt.step(&loss.backward()?)?;
//!     ema.update(&varmap)?;
//! }
//! let state = opt.state()?; // moments and step: a checkpoint resumes exactly
//! assert_eq!(opt.step_count(), 10);
//! assert!(state.contains_key("w.m"));
//! # Ok(())
//! # }
//! ```

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod atomic_file;
#[cfg(feature = "charts")]
mod chart;
mod class_folder;
mod condition2image_model;
mod denoiser_trainer;
mod ema;
mod error;
mod grad_clip;
mod image_folder;
mod joint_model;
mod lr_schedule;
mod optimiser_file;
mod param_groups;
mod pipeline_export;
mod seeded_init;
mod sharding;
mod token_cache;
mod token_dataset;
mod trainable_denoiser;

pub use atomic_file::{save_tensors_atomic, temp_path, write_atomic, write_json_atomic};
#[cfg(feature = "charts")]
pub use chart::{LineChart, Series, register_font};
pub use class_folder::{ClassFolder, LabelledImage};
pub use condition2image_model::{Condition2ImageModel, original_init_rule};
pub use denoiser_trainer::{DenoiserTrainer, DenoiserTrainingConfig, StepLog, default_step_seed};
pub use ema::Ema;
pub use error::{Error, Result};
pub use grad_clip::clip_grad_norm;
pub use image_folder::{BadData, CaptionedImage, ImageFolder, fit_image};
pub use joint_model::{JointModel, NULL_KEY, TEXT_PREFIX, TRANSFORMER_PREFIX, condition_with_null};
pub use lr_schedule::LrSchedule;
pub use optimiser_file::AdamWFile;
pub use param_groups::{GroupedAdamW, ParamGroup, Selector};
pub use pipeline_export::{
    PipelineExport, TOKENIZER_FILES, export_class_pipeline, export_pipeline,
};
pub use seeded_init::{InitRule, pytorch_default_rule, seeded_init, write_fresh_transformer};
pub use sharding::Rank;
pub use token_cache::{TokenCache, files_key};
pub use token_dataset::{ClassTokenData, TokenData, TokenDataset, UnconditionalTokenData};
pub use trainable_denoiser::{TextConditionedModel, TrainableDenoiser};
pub use vq_codebook::{TrainConfig as VqVaeTrainConfig, Trainer as VqVaeTrainer};
pub use vq_nn::{AdamW, ParamsAdamW};

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
