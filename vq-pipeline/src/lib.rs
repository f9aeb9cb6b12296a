//! # vq-pipeline
//!
//! VQ-Diffusion text-to-image end to end, on the project's crates: [`clip_text`] (tokenizer and
//! text encoder), [`vq_transformer`] (the denoiser), [`vq_codebook`] (the VQ-VAE) and
//! [`discrete_diffusion`] (the chain and the samplers). Models load from a local folder in the
//! diffusers layout or from the Hugging Face Hub ([`ModelSource`]); the `vqd` command wraps it.
//!
//! ```no_run
//! use discrete_diffusion::SeededNoise;
//! use vq_pipeline::{GenerationOptions, LoadOptions, ModelSource, SamplerChoice, VqDiffusionPipeline};
//!
//! # fn main() -> vq_pipeline::Result<()> {
//! let root = ModelSource::parse("microsoft/vq-diffusion-ithq", "main")?.resolve(Default::default(), false)?;
//! let pipeline = VqDiffusionPipeline::load(&root, LoadOptions::default())?;
//! let options = GenerationOptions::new(["a teddy bear playing in the pool"])
//!     .seed(0)
//!     .sampler(SamplerChoice::Purity)
//!     .guidance_scale(5.0);
//! let result = pipeline.generate(&options, &mut SeededNoise::new(options.seed), |_| Ok(()))?;
//! result.images[0].save("teddy.png").unwrap();
//! # Ok(())
//! # }
//! ```

mod embedded_model;
mod error;
mod generation_defaults;
mod model_files;
mod model_index;
mod model_source;
mod null_embedding;
mod options;
mod output;
mod pipeline;

pub use embedded_model::{
    DEFAULT_MODEL_ENV, EMBEDDED_MODEL_RELATIVE, default_model_dir, embedded_model_dir,
};
pub use error::{PipelineError, Result};
pub use generation_defaults::{GENERATION_CONFIG, GenerationDefaults};
pub use model_files::{ModelFiles, Variant, hub_candidates};
pub use model_index::{ModelIndex, NULL_EMBEDDING, REQUIRED_COMPONENTS};
pub use model_source::{ModelSource, offline_from_env};
pub use null_embedding::{NullEmbeddingConfig, load_null_embedding};
pub use options::{GenerationOptions, NullCondition, SamplerChoice};
pub use output::{contact_sheet, write_outputs};
pub use pipeline::{Generation, LoadOptions, Timings, VqDiffusionPipeline, check_consistency};
