//! `model_index.json`: the pipeline class and its components. Both spellings of the null-embedding
//! component occur — `["vq_diffusion", "LearnedClassifierFreeSamplingEmbeddings"]` on the hub and
//! `["diffusers", ...]` as diffusers' `save_pretrained` writes it — and the hub's legacy `fp16`
//! branch lacks the component entirely (then guidance falls back to the empty prompt).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::read_json;
use crate::{Error, Result};

/// The parsed index.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelIndex {
    /// `_class_name` (expected `VQDiffusionPipeline`).
    pub class_name: String,
    /// component name → (library, class).
    pub components: BTreeMap<String, (String, String)>,
}

/// Components every VQ-Diffusion pipeline needs.
pub const REQUIRED_COMPONENTS: [&str; 5] = [
    "scheduler",
    "text_encoder",
    "tokenizer",
    "transformer",
    "vqvae",
];
/// The optional learned null embedding.
pub const NULL_EMBEDDING: &str = "learned_classifier_free_sampling_embeddings";

pub use vq_nn::{DIFFUSERS_VERSION, pipeline_model_index, with_diffusers_class};

impl ModelIndex {
    /// Parses `model_index.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let io = |reason: &str| Error::InvalidFile {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        let json: serde_json::Value = read_json(path)?;
        let object = json.as_object().ok_or_else(|| io("not a JSON object"))?;
        let class_name = object
            .get("_class_name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| io("no _class_name"))?
            .to_string();
        let mut components = BTreeMap::new();
        for (key, value) in object {
            if key.starts_with('_') {
                continue;
            }
            if let Some([library, class]) = value.as_array().map(|a| a.as_slice())
                && let (Some(library), Some(class)) = (library.as_str(), class.as_str())
            {
                components.insert(key.clone(), (library.to_string(), class.to_string()));
            }
        }
        Ok(Self {
            class_name,
            components,
        })
    }

    /// Problems with the index itself (wrong class, missing components).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.class_name != "VQDiffusionPipeline" {
            problems.push(format!(
                "model_index.json: _class_name is {:?}, expected \"VQDiffusionPipeline\"",
                self.class_name
            ));
        }
        for c in REQUIRED_COMPONENTS {
            if !self.components.contains_key(c) {
                problems.push(format!("model_index.json: no {c:?} component"));
            }
        }
        problems
    }

    /// Whether the index lists a learned null embedding.
    pub fn has_null_embedding(&self) -> bool {
        self.components.contains_key(NULL_EMBEDDING)
    }
}
