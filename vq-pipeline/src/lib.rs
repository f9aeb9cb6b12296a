//! # vq-pipeline
//!
//! VQ-Diffusion text-to-image end to end, on the project's crates: [`clip_text`] (tokenizer and
//! text encoder), [`vq_transformer`] (the denoiser), [`vq_codebook`] (the VQ-VAE) and
//! [`discrete_diffusion`] (the chain and the samplers). Models load from a local folder in the
//! diffusers layout or from the Hugging Face Hub ([`ModelSource`]) onto any candle device; the
//! `vqd` command (feature `cli`, on by default) wraps it.
//!
//! ```no_run
//! use discrete_diffusion::SeededNoise;
//! use vq_pipeline::{
//!     GenerationOptions, HubOptions, LoadOptions, ModelSource, SamplerChoice, Variant,
//!     VqDiffusionPipeline,
//! };
//!
//! # fn main() -> vq_pipeline::Result<()> {
//! let root = ModelSource::parse("microsoft/vq-diffusion-ithq", "main")?
//!     .resolve(Variant::Default, &HubOptions::from_env())?;
//! let options = LoadOptions {
//!     device: vq_nn::parse_device("cpu")?,
//!     ..LoadOptions::default()
//! };
//! let pipeline = VqDiffusionPipeline::from_pretrained(&root, options)?;
//! let options = GenerationOptions::new(["a teddy bear playing in the pool"])
//!     .sampler(SamplerChoice::Purity)
//!     .guidance_scale(5.0);
//! let result = pipeline.generate(&options, &mut SeededNoise::new(0), |_| Ok(()))?;
//! result.images[0].save("teddy.png").unwrap();
//! # Ok(())
//! # }
//! ```

mod class_pipeline;
mod edit;
mod embedded_model;
mod error;
mod generation_defaults;
mod model_files;
mod model_index;
mod model_source;
mod null_embedding;
mod options;
mod original;
mod output;
mod pipeline;
mod preview;
mod sampler_settings;

pub use class_pipeline::{ClassConditionalPipeline, is_class_conditional_model, parse_class_label};
pub use discrete_diffusion::Reimpose;
pub use edit::{
    EditInput, EditRecord, box_mask, encode_sized_image, fit_image, fit_mask, regenerated_tokens,
};
pub use embedded_model::{
    CACHE_ENV, DEFAULT_MODEL_ENV, EMBEDDED_MODEL_RELATIVE, cache_dir, default_model_dir,
    has_embedded_model, unpack_embedded_model,
};
pub use error::{Error, Result};
pub use generation_defaults::{GENERATION_CONFIG, GenerationDefaults};
pub use model_files::{ModelFiles, hub_candidates};
pub use model_index::{
    DIFFUSERS_VERSION, ModelIndex, NULL_EMBEDDING, REQUIRED_COMPONENTS, pipeline_model_index,
    with_diffusers_class,
};
pub use model_source::{
    DEFAULT_HUB_TIMEOUT, HubOptions, ModelSource, offline_from_env, snapshot_commit,
};
pub use null_embedding::{NullEmbeddingConfig, load_null_embedding};
pub use options::{FAST_PRESET_STEPS, GenerationOptions, NullCondition, SamplerChoice};
pub use original::{
    CLASS_NAMES_FILE, CLASS_PIPELINE, CLASS_TRANSFORMER, CodeRemap, ConversionReport,
    ConvertOptions, OriginalConfig, OriginalFamily, OriginalQuantizer, OriginalTransformer,
    OriginalVqGan, RemapChoice, convert_original,
};
pub use output::{
    ModelRecord, OutputPlan, RunLog, contact_sheet, crate_versions, write_atomically, write_outputs,
};
pub use pipeline::{
    Generation, LoadOptions, MAX_BATCH_BYTES, Timings, VqDiffusionPipeline, check_consistency,
};
pub use preview::upscale_nearest;
pub use sampler_settings::{
    DEFAULT_CHOICE_TEMPERATURE, DEFAULT_ENTROPY_BOUND, DEFAULT_REMASK, DEFAULT_THRESHOLD,
    DEFAULT_UNMASK_STEPS, SamplerSettings,
};
pub use vq_nn::Variant;

/// The crate README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The workspace README's examples (the `discrete-diffusion` snippet), compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadmeDoctests;
