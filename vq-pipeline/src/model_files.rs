//! Locating every file of a diffusers-layout VQ-Diffusion folder — configs and weights of each
//! component, in safetensors or PyTorch `.bin`, optionally the hub's `fp16` variant files
//! (`*.fp16.safetensors` / `*.fp16.bin`) — and reporting everything missing in one error.

use std::path::{Path, PathBuf};

use crate::model_index::{ModelIndex, NULL_EMBEDDING};
use crate::{PipelineError, Result};

/// Weight-file variant: the default files or the hub's `fp16` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// `diffusion_pytorch_model.safetensors`, `model.safetensors`, … (or `.bin`).
    #[default]
    Default,
    /// `diffusion_pytorch_model.fp16.safetensors`, … (or `.fp16.bin`).
    Fp16,
}

impl Variant {
    fn infix(self) -> &'static str {
        match self {
            Variant::Default => "",
            Variant::Fp16 => ".fp16",
        }
    }

    /// Candidate weight files of a component whose weights are called `stem`.
    pub fn candidates(self, stem: &str) -> [String; 2] {
        let v = self.infix();
        [format!("{stem}{v}.safetensors"), format!("{stem}{v}.bin")]
    }
}

/// Weight-file stems per component (diffusers models, transformers models).
pub(crate) const DIFFUSERS_WEIGHTS: &str = "diffusion_pytorch_model";
pub(crate) const TRANSFORMERS_WEIGHTS_ST: &str = "model";
pub(crate) const TRANSFORMERS_WEIGHTS_BIN: &str = "pytorch_model";

/// Every file the pipeline reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// The pipeline folder.
    pub root: PathBuf,
    /// Parsed `model_index.json`.
    pub index: ModelIndex,
    /// `scheduler/scheduler_config.json`.
    pub scheduler_config: PathBuf,
    /// `text_encoder/` folder.
    pub text_encoder_dir: PathBuf,
    /// Its weights.
    pub text_encoder_weights: PathBuf,
    /// `tokenizer/` folder.
    pub tokenizer_dir: PathBuf,
    /// `transformer/config.json`.
    pub transformer_config: PathBuf,
    /// Its weights.
    pub transformer_weights: PathBuf,
    /// `vqvae/config.json`.
    pub vqvae_config: PathBuf,
    /// Its weights.
    pub vqvae_weights: PathBuf,
    /// `(config.json, weights)` of the learned null embedding, when the model has one.
    pub null_embedding: Option<(PathBuf, PathBuf)>,
}

/// `root/relative`, noting a problem when it is not a file.
fn require(root: &Path, relative: &str, problems: &mut Vec<String>) -> PathBuf {
    let p = root.join(relative);
    if !p.is_file() {
        problems.push(format!("missing {relative}"));
    }
    p
}

/// The first existing weight file of `component`, noting a problem when there is none.
fn weights(root: &Path, component: &str, names: &[String], problems: &mut Vec<String>) -> PathBuf {
    let dir = root.join(component);
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            problems.push(format!(
                "missing {component} weights (looked for {})",
                names.join(", ")
            ));
            dir.join(&names[0])
        })
}

impl ModelFiles {
    /// Locates the files in `root`; every missing file is reported at once.
    pub fn locate(root: &Path, variant: Variant) -> Result<Self> {
        let mut problems = Vec::new();
        let index_path = root.join("model_index.json");
        if !index_path.is_file() {
            return Err(PipelineError::InvalidModel {
                folder: root.to_path_buf(),
                problems: vec!["no model_index.json: not a diffusers pipeline folder".into()],
            });
        }
        let index = ModelIndex::from_file(&index_path)?;
        problems.extend(index.problems());
        let scheduler_config = require(root, "scheduler/scheduler_config.json", &mut problems);
        require(root, "text_encoder/config.json", &mut problems);
        let transformer_config = require(root, "transformer/config.json", &mut problems);
        let vqvae_config = require(root, "vqvae/config.json", &mut problems);
        let [te_st, _] = variant.candidates(TRANSFORMERS_WEIGHTS_ST);
        let [_, te_bin] = variant.candidates(TRANSFORMERS_WEIGHTS_BIN);
        let text_encoder_weights = weights(root, "text_encoder", &[te_st, te_bin], &mut problems);
        let diffusers_names = variant.candidates(DIFFUSERS_WEIGHTS);
        let transformer_weights = weights(root, "transformer", &diffusers_names, &mut problems);
        let vqvae_weights = weights(root, "vqvae", &diffusers_names, &mut problems);
        let null_embedding = index.has_null_embedding().then(|| {
            let config = require(
                root,
                &format!("{NULL_EMBEDDING}/config.json"),
                &mut problems,
            );
            (
                config,
                weights(root, NULL_EMBEDDING, &diffusers_names, &mut problems),
            )
        });
        let tokenizer_dir = root.join("tokenizer");
        let has_fast = tokenizer_dir.join("tokenizer.json").is_file();
        let has_slow = tokenizer_dir.join("vocab.json").is_file()
            && tokenizer_dir.join("merges.txt").is_file();
        if !has_fast && !has_slow {
            problems.push(
                "missing tokenizer/tokenizer.json (or tokenizer/vocab.json + merges.txt)".into(),
            );
        }
        if !problems.is_empty() {
            return Err(PipelineError::InvalidModel {
                folder: root.to_path_buf(),
                problems,
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            index,
            scheduler_config,
            text_encoder_dir: root.join("text_encoder"),
            text_encoder_weights,
            tokenizer_dir,
            transformer_config,
            transformer_weights,
            vqvae_config,
            vqvae_weights,
            null_embedding,
        })
    }
}

/// Every file a hub snapshot may need to provide for `variant` (paths relative to the root).
pub fn hub_candidates(variant: Variant) -> Vec<String> {
    let mut files: Vec<String> = [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "tokenizer/tokenizer.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "transformer/config.json",
        "vqvae/config.json",
        "learned_classifier_free_sampling_embeddings/config.json",
    ]
    .map(String::from)
    .to_vec();
    let [te_st, _] = variant.candidates(TRANSFORMERS_WEIGHTS_ST);
    let [_, te_bin] = variant.candidates(TRANSFORMERS_WEIGHTS_BIN);
    files.push(format!("text_encoder/{te_st}"));
    files.push(format!("text_encoder/{te_bin}"));
    for component in ["transformer", "vqvae", NULL_EMBEDDING] {
        for name in variant.candidates(DIFFUSERS_WEIGHTS) {
            files.push(format!("{component}/{name}"));
        }
    }
    files
}
