//! Stage 4: the trained model as a diffusers `VQDiffusionPipeline` folder — `model_index.json`,
//! `scheduler/`, `text_encoder/` (f16 weights: the 49,408-row token table dominates the size),
//! `tokenizer/` (the real CLIP BPE slow-tokenizer files), `transformer/`, `vqvae/` and
//! `learned_classifier_free_sampling_embeddings/` — which `vq_pipeline::VqDiffusionPipeline`
//! (and diffusers) load as is, plus the recommended sampling settings (`generation_config.json`).

use std::path::Path;

use anyhow::Context;
use candle_core::DType;
use serde_json::{Value, json};
use vq_pipeline::{
    GENERATION_CONFIG, GenerationDefaults, pipeline_model_index, with_diffusers_class,
};

use super::config::EmbeddedConfig;
use super::denoiser_training::repository_tokenizer_dir;
use super::joint_model::{JointModel, NULL_KEY, TEXT_PREFIX, TRANSFORMER_PREFIX};
use vq_train::{save_tensors_atomic, write_atomic, write_json_atomic};

/// The four slow-tokenizer files copied into `tokenizer/`.
pub const TOKENIZER_FILES: [&str; 4] = [
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// The sampling settings the embedded recipe's models recommend (`generation_config.json`, read
/// by vq-pipeline as its defaults, ignored by diffusers): no guidance. On the shipped model the
/// guidance study (docs/results.md §4, 50 + 50 test prompts) measured one-object all-correct
/// 0.40 and our FID 23.3 at scale 1, against 0.30 / 33.1 at 2 and 0.03 / 83.7 at diffusers'
/// default 5 (200 + 200 prompts): guidance over-saturates a model this small.
pub const RECOMMENDED_GENERATION: GenerationDefaults = GenerationDefaults {
    guidance_scale: Some(1.0),
    truncation_rate: None,
};

/// Writes the pipeline folder `out` from the joint model and the exported VQ-VAE folder `vq_dir`.
pub fn export_pipeline(
    config: &EmbeddedConfig,
    model: &JointModel,
    vq_dir: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    write_json_atomic(&out.join("model_index.json"), &pipeline_model_index())?;

    write_json_atomic(&out.join(GENERATION_CONFIG), &RECOMMENDED_GENERATION)?;
    write_json_atomic(
        &out.join("scheduler/scheduler_config.json"),
        &with_diffusers_class(
            config.chain.schedule(config.codebook())?,
            "VQDiffusionScheduler",
        ),
    )?;

    let mut text = serde_json::to_value(&config.text)?;
    if let Value::Object(map) = &mut text {
        map.insert("architectures".into(), json!(["CLIPTextModel"]));
        map.insert("model_type".into(), "clip_text_model".into());
        map.insert("bos_token_id".into(), 49406.into());
        map.insert("eos_token_id".into(), 49407.into());
        map.insert("pad_token_id".into(), 1.into());
        map.insert("torch_dtype".into(), "float16".into());
    }
    write_json_atomic(&out.join("text_encoder/config.json"), &text)?;
    save_tensors_atomic(
        &out.join("text_encoder/model.safetensors"),
        &model.part_as(TEXT_PREFIX, DType::F16)?,
    )?;

    for file in TOKENIZER_FILES {
        let bytes = std::fs::read(repository_tokenizer_dir().join(file))
            .with_context(|| format!("reading tokenizer file {file}"))?;
        write_atomic(&out.join("tokenizer").join(file), &bytes)?;
    }

    write_json_atomic(
        &out.join("transformer/config.json"),
        &with_diffusers_class(&config.transformer, "Transformer2DModel"),
    )?;
    save_tensors_atomic(
        &out.join("transformer/diffusion_pytorch_model.safetensors"),
        &model.part_as(TRANSFORMER_PREFIX, DType::F32)?,
    )?;

    for file in ["config.json", "diffusion_pytorch_model.safetensors"] {
        let bytes = std::fs::read(vq_dir.join(file))
            .with_context(|| format!("reading {}", vq_dir.join(file).display()))?;
        write_atomic(&out.join("vqvae").join(file), &bytes)?;
    }

    let null_dir = out.join("learned_classifier_free_sampling_embeddings");
    write_json_atomic(
        &null_dir.join("config.json"),
        &json!({
            "_class_name": "LearnedClassifierFreeSamplingEmbeddings",
            "_diffusers_version": "0.42.1",
            "learnable": true,
            "hidden_size": config.text.hidden_size,
            "length": config.text.max_position_embeddings,
        }),
    )?;
    let null = model.part_as("null", DType::F32)?;
    let embeddings = null
        .get(NULL_KEY.trim_start_matches("null."))
        .context("null embedding")?
        .clone();
    save_tensors_atomic(
        &null_dir.join("diffusion_pytorch_model.safetensors"),
        &std::collections::HashMap::from([("embeddings".to_string(), embeddings)]),
    )?;
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
