//! [`export_pipeline`]: a trained [`JointModel`] as a complete diffusers `VQDiffusionPipeline`
//! folder — `model_index.json`, `scheduler/`, `text_encoder/`, `tokenizer/` (the slow-tokenizer
//! files, copied), `transformer/`, `vqvae/` (copied from the VQ-VAE's folder) and
//! `learned_classifier_free_sampling_embeddings/` — which this project's pipeline and diffusers
//! load as is. For a model trained from scratch; a fine-tuned one can instead copy its base
//! folder and replace the weights ([`JointModel::save_weights`]).
//!
//! [`export_class_pipeline`]: a trained [`Condition2ImageModel`] as this project's
//! class-conditional (or unconditional) model folder — `model_index.json`
//! (`VQDiffusionClassPipeline`), `scheduler/`, `transformer/`, `vqvae/` and, for a class model,
//! `class_names.json` — which `vq_pipeline::ClassConditionalPipeline` (`vqd generate --class`)
//! loads.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use clip_text::ClipTextConfig;
use discrete_diffusion::VqDiffusionSchedule;
use serde_json::{Value, json};
use vq_nn::{pipeline_model_index, with_diffusers_class};
use vq_transformer::Transformer2DConfig;

use crate::error::io;
use crate::{
    Condition2ImageModel, Error, JointModel, NULL_KEY, Result, TEXT_PREFIX, TRANSFORMER_PREFIX,
};

/// The slow-tokenizer files copied into `tokenizer/`.
pub const TOKENIZER_FILES: [&str; 4] = [
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// What an export writes besides the model's weights.
#[derive(Debug, Clone, Copy)]
pub struct PipelineExport<'a> {
    /// The text encoder's architecture.
    pub text: &'a ClipTextConfig,
    /// The denoiser's architecture.
    pub transformer: &'a Transformer2DConfig,
    /// The chain (`num_vec_classes` set).
    pub schedule: &'a VqDiffusionSchedule,
    /// A diffusers `VQModel` folder (`config.json` + `diffusion_pytorch_model.safetensors`).
    pub vqvae_dir: &'a Path,
    /// A folder with [`TOKENIZER_FILES`].
    pub tokenizer_dir: &'a Path,
    /// Storage dtype of the text encoder's weights (its token table dominates a small model's
    /// size: F16 halves it).
    pub text_dtype: DType,
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).map_err(io(from))?;
    crate::write_atomic(to, &bytes)
}

/// Copies a diffusers `VQModel` folder's config and weights into `out/vqvae/`.
fn copy_vqvae(vqvae_dir: &Path, out: &Path) -> Result<()> {
    for file in ["config.json", "diffusion_pytorch_model.safetensors"] {
        copy(&vqvae_dir.join(file), &out.join("vqvae").join(file))?;
    }
    Ok(())
}

/// Writes the class-conditional or unconditional model folder `out` for `model`: the chain's
/// `schedule` (`num_vec_classes` set), the VQ-VAE of `vqvae_dir` (a diffusers `VQModel`
/// folder) and, for a class model, its `class_names` in label order (one per label, or none).
pub fn export_class_pipeline(
    model: &Condition2ImageModel,
    schedule: &VqDiffusionSchedule,
    vqvae_dir: &Path,
    class_names: &[String],
    out: &Path,
) -> Result<()> {
    let config = model.config();
    if !class_names.is_empty() && class_names.len() != config.num_labels {
        return Err(Error::InvalidSetting(format!(
            "{} class names for a model of {} classes",
            class_names.len(),
            config.num_labels
        )));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    crate::write_json_atomic(
        &out.join("model_index.json"),
        &vq_nn::class_pipeline_model_index(config.class_name()),
    )?;
    crate::write_json_atomic(
        &out.join("scheduler/scheduler_config.json"),
        &with_diffusers_class(schedule, "VQDiffusionScheduler"),
    )?;
    model.save_weights(out)?;
    copy_vqvae(vqvae_dir, out)?;
    let names = out.join(vq_nn::CLASS_NAMES_FILE);
    if class_names.is_empty() {
        let _ = std::fs::remove_file(&names);
        Ok(())
    } else {
        crate::write_json_atomic(&names, &class_names)
    }
}

/// Writes the pipeline folder `out` for `model`.
pub fn export_pipeline(model: &JointModel, spec: &PipelineExport<'_>, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    crate::write_json_atomic(&out.join("model_index.json"), &pipeline_model_index())?;
    crate::write_json_atomic(
        &out.join("scheduler/scheduler_config.json"),
        &with_diffusers_class(spec.schedule, "VQDiffusionScheduler"),
    )?;

    let mut text = serde_json::to_value(spec.text).expect("configs serialise");
    if let Value::Object(map) = &mut text {
        map.insert("architectures".into(), json!(["CLIPTextModel"]));
        map.insert("model_type".into(), "clip_text_model".into());
        map.insert("bos_token_id".into(), 49406.into());
        map.insert("eos_token_id".into(), 49407.into());
        map.insert("pad_token_id".into(), 1.into());
        let dtype = match spec.text_dtype {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            _ => "float32",
        };
        map.insert("torch_dtype".into(), dtype.into());
    }
    crate::write_json_atomic(&out.join("text_encoder/config.json"), &text)?;
    crate::save_tensors_atomic(
        &out.join("text_encoder/model.safetensors"),
        &model.part_as(TEXT_PREFIX, spec.text_dtype)?,
    )?;
    for file in TOKENIZER_FILES {
        copy(
            &spec.tokenizer_dir.join(file),
            &out.join("tokenizer").join(file),
        )?;
    }

    crate::write_json_atomic(
        &out.join("transformer/config.json"),
        &with_diffusers_class(spec.transformer, "Transformer2DModel"),
    )?;
    crate::save_tensors_atomic(
        &out.join("transformer/diffusion_pytorch_model.safetensors"),
        &model.part_as(TRANSFORMER_PREFIX, DType::F32)?,
    )?;
    copy_vqvae(spec.vqvae_dir, out)?;

    let null_dir = out.join("learned_classifier_free_sampling_embeddings");
    let (config, embeddings) = match model.part_as("null", DType::F32)?.remove(
        NULL_KEY
            .strip_prefix("null.")
            .expect("the null embedding's key"),
    ) {
        Some(e) => (
            json!({"learnable": true, "hidden_size": spec.text.hidden_size,
                   "length": spec.text.max_position_embeddings}),
            e,
        ),
        None => (
            json!({"learnable": false, "hidden_size": null, "length": null}),
            Tensor::zeros(0, DType::F32, &candle_core::Device::Cpu)?,
        ),
    };
    crate::write_json_atomic(
        &null_dir.join("config.json"),
        &with_diffusers_class(&config, "LearnedClassifierFreeSamplingEmbeddings"),
    )?;
    crate::save_tensors_atomic(
        &null_dir.join("diffusion_pytorch_model.safetensors"),
        &HashMap::from([("embeddings".to_string(), embeddings)]),
    )
}
