//! Locating every file of a diffusers-layout VQ-Diffusion folder — configs and weights of each
//! component, in safetensors or PyTorch `.bin`, optionally the hub's `fp16` variant files
//! (`*.fp16.safetensors` / `*.fp16.bin`) — and reporting everything missing in one error.

use std::path::{Path, PathBuf};

use crate::model_index::{ModelIndex, NULL_EMBEDDING};
use vq_nn::{Variant, WeightNames};

use crate::{Error, Result};

/// Weight-file names of diffusers models and transformers models.
pub(crate) const DIFFUSERS_WEIGHTS: WeightNames = WeightNames::DIFFUSERS;
pub(crate) const TRANSFORMERS_WEIGHTS: WeightNames = WeightNames::TRANSFORMERS;

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
            return Err(Error::InvalidModel {
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
        let text_encoder_weights = weights(
            root,
            "text_encoder",
            &TRANSFORMERS_WEIGHTS.candidates(variant),
            &mut problems,
        );
        let diffusers_names = DIFFUSERS_WEIGHTS.candidates(variant);
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
            return Err(Error::InvalidModel {
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
    for name in TRANSFORMERS_WEIGHTS.candidates(variant) {
        files.push(format!("text_encoder/{name}"));
    }
    for component in ["transformer", "vqvae", NULL_EMBEDDING] {
        for name in DIFFUSERS_WEIGHTS.candidates(variant) {
            files.push(format!("{component}/{name}"));
        }
    }
    files
}
