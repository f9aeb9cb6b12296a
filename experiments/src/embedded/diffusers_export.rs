//! Stage 4: the trained model as a diffusers `VQDiffusionPipeline` folder (`vq_train::export_pipeline`)
//! — `model_index.json`,
//! `scheduler/`, `text_encoder/` (f16 weights: the 49,408-row token table dominates the size),
//! `tokenizer/` (the real CLIP BPE slow-tokenizer files), `transformer/`, `vqvae/` and
//! `learned_classifier_free_sampling_embeddings/` — which `vq_pipeline::VqDiffusionPipeline`
//! (and diffusers) load as is, plus the recommended sampling settings (`generation_config.json`).

use std::path::Path;

use candle_core::DType;
use vq_pipeline::{GENERATION_CONFIG, GenerationDefaults};

use super::config::EmbeddedConfig;
use super::denoiser_training::repository_tokenizer_dir;
use super::joint_model::JointModel;
use vq_train::write_json_atomic;

pub use vq_train::TOKENIZER_FILES;

/// The sampling settings the embedded recipe's models recommend (`generation_config.json`, read
/// by vq-pipeline as its defaults, ignored by diffusers): no guidance. On the shipped model the
/// guidance study (docs/results.md §4, 50 + 50 test prompts) measured one-object all-correct
/// 0.40 and our FID 23.3 at scale 1, against 0.30 / 33.1 at 2 and 0.03 / 83.7 at diffusers'
/// default 5 (200 + 200 prompts): guidance over-saturates a model this small.
pub const RECOMMENDED_GENERATION: GenerationDefaults = GenerationDefaults {
    guidance_scale: Some(1.0),
    truncation_rate: None,
};

/// Writes the pipeline folder `out` from the joint model and the exported VQ-VAE folder `vq_dir`
/// (`vq_train::export_pipeline`, text encoder in f16) with the recipe's recommended settings.
pub fn export_pipeline(
    config: &EmbeddedConfig,
    model: &JointModel,
    vq_dir: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let schedule = config.chain.schedule(config.codebook())?;
    let tokenizer = repository_tokenizer_dir();
    vq_train::export_pipeline(
        model,
        &vq_train::PipelineExport {
            text: &config.text,
            transformer: &config.transformer,
            schedule: &schedule,
            vqvae_dir: vq_dir,
            tokenizer_dir: &tokenizer,
            text_dtype: DType::F16,
        },
        out,
    )?;
    write_json_atomic(&out.join(GENERATION_CONFIG), &RECOMMENDED_GENERATION)?;
    Ok(())
}

/// Total size in bytes of the files under `dir`.
pub fn folder_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                folder_size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
