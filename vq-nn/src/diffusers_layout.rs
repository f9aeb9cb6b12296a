//! What a diffusers pipeline folder of VQ-Diffusion says about itself: its `model_index.json`
//! (`VQDiffusionPipeline` and its six components, as diffusers' `save_pretrained` writes them)
//! and the `_class_name` / `_diffusers_version` stamp of each component config, and the index
//! of this project's class-conditional / unconditional folders (no text: `transformer/` is a
//! `Condition2ImageTransformer` or `UnCondition2ImageTransformer`). Shared by every writer of
//! model folders (`vqd train`, `vqd convert`, vq-train's exports, the recipe's export).

/// The diffusers version written into configs (the version the fixtures were made with).
pub const DIFFUSERS_VERSION: &str = "0.42.1";

/// `model_index.json` of a VQ-Diffusion pipeline folder.
pub fn pipeline_model_index() -> serde_json::Value {
    serde_json::json!({
        "_class_name": "VQDiffusionPipeline",
        "_diffusers_version": DIFFUSERS_VERSION,
        "learned_classifier_free_sampling_embeddings": ["diffusers", "LearnedClassifierFreeSamplingEmbeddings"],
        "scheduler": ["diffusers", "VQDiffusionScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "transformer": ["diffusers", "Transformer2DModel"],
        "vqvae": ["diffusers", "VQModel"],
    })
}

/// A component config as diffusers writes it: `value`'s fields plus `_class_name` = `class`
/// and `_diffusers_version`.
pub fn with_diffusers_class(value: impl serde::Serialize, class: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(value).expect("configs serialise to JSON");
    if let serde_json::Value::Object(map) = &mut v {
        map.insert("_class_name".into(), class.into());
        map.insert("_diffusers_version".into(), DIFFUSERS_VERSION.into());
    }
    v
}

/// `_class_name` of the `model_index.json` of a class-conditional (or unconditional) model
/// folder: `transformer/`, `scheduler/`, `vqvae/`, no text encoder.
pub const CLASS_PIPELINE: &str = "VQDiffusionClassPipeline";

/// The optional list of class names beside a class model's `model_index.json` (label order).
pub const CLASS_NAMES_FILE: &str = "class_names.json";

/// `model_index.json` of a class-conditional or unconditional model folder whose transformer
/// is of class `transformer_class`.
pub fn class_pipeline_model_index(transformer_class: &str) -> serde_json::Value {
    serde_json::json!({
        "_class_name": CLASS_PIPELINE,
        "scheduler": ["diffusers", "VQDiffusionScheduler"],
        "transformer": ["vq-transformer", transformer_class],
        "vqvae": ["diffusers", "VQModel"],
    })
}
