//! [`OriginalConfig`]: the few fields of an original VQ-Diffusion YAML config
//! (`OUTPUT/pretrained_model/config_text.yaml`, `configs/*.yaml` of microsoft/VQ-Diffusion) that a
//! checkpoint does not store — the head count, the token grid, the text model's name — plus the
//! ones it does, to cross-check the file against the config it was trained with.
//!
//! Paths (under `model.params`): `diffusion_config.params.transformer_config.params.{n_head,
//! n_layer, n_embd, content_spatial_size, class_number}`, `diffusion_config.params.diffusion_step`,
//! `diffusion_config.params.content_emb_config.params.num_embed`,
//! `diffusion_config.params.condition_emb_config.params.clip_name`,
//! `content_codec_config.params.token_shape`. The dumps use PyYAML's `!!python/tuple` tag for
//! some lists; tags are looked through.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::io;
use crate::{Error, Result};

/// What an original YAML config says about the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalConfig {
    /// The file.
    pub path: PathBuf,
    /// `n_head`.
    pub heads: Option<usize>,
    /// `n_layer`.
    pub layers: Option<usize>,
    /// `n_embd`.
    pub width: Option<usize>,
    /// `content_emb_config.params.num_embed` (content classes `K`).
    pub classes: Option<usize>,
    /// `diffusion_step`.
    pub timesteps: Option<usize>,
    /// Side of the token grid (`content_codec_config.params.token_shape`, else the
    /// transformer's `content_spatial_size`).
    pub grid: Option<usize>,
    /// `class_number` (class-conditional models).
    pub class_number: Option<usize>,
    /// `condition_emb_config.params.clip_name` (`ViT-B/32`).
    pub clip_name: Option<String>,
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(untag(v), |v, key| untag(v).get(*key).map(untag))
}

fn number(v: &Value, path: &[&str]) -> Option<usize> {
    get(v, path).and_then(|v| v.as_u64()).map(|n| n as usize)
}

fn square_side(v: &Value, path: &[&str]) -> Option<usize> {
    let list = get(v, path)?.as_sequence()?;
    let sides: Vec<u64> = list.iter().filter_map(|x| untag(x).as_u64()).collect();
    match sides.as_slice() {
        [h, w] if h == w => Some(*h as usize),
        _ => None,
    }
}

impl OriginalConfig {
    /// Reads `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let root: Value = serde_yaml::from_str(&text).map_err(|e| Error::InvalidFile {
            path: path.to_path_buf(),
            reason: format!("not a readable YAML config: {e}"),
        })?;
        let params = get(&root, &["model", "params"]).ok_or_else(|| Error::InvalidFile {
            path: path.to_path_buf(),
            reason: "no model.params: not an original VQ-Diffusion config (a VQ-GAN config \
                     goes with its VQ-GAN, not with --config)"
                .into(),
        })?;
        let diffusion = ["diffusion_config", "params"];
        let transformer = [&diffusion[..], &["transformer_config", "params"]].concat();
        fn at<'a>(base: &[&'a str], key: &'a str) -> Vec<&'a str> {
            [base, &[key]].concat()
        }
        Ok(Self {
            path: path.to_path_buf(),
            heads: number(params, &at(&transformer, "n_head")),
            layers: number(params, &at(&transformer, "n_layer")),
            width: number(params, &at(&transformer, "n_embd")),
            classes: number(
                params,
                &[
                    &diffusion[..],
                    &["content_emb_config", "params", "num_embed"],
                ]
                .concat(),
            ),
            timesteps: number(params, &at(&diffusion, "diffusion_step")),
            grid: square_side(params, &["content_codec_config", "params", "token_shape"])
                .or_else(|| square_side(params, &at(&transformer, "content_spatial_size"))),
            class_number: number(params, &at(&transformer, "class_number")),
            clip_name: get(
                params,
                &[
                    &diffusion[..],
                    &["condition_emb_config", "params", "clip_name"],
                ]
                .concat(),
            )
            .and_then(|v| v.as_str())
            .map(str::to_string),
        })
    }

    /// Compares a value inferred from the checkpoint with the config's.
    pub(crate) fn check(&self, what: &str, config: Option<usize>, checkpoint: usize) -> Result<()> {
        match config {
            Some(c) if c != checkpoint => Err(Error::InvalidFile {
                path: self.path.clone(),
                reason: format!(
                    "{what} is {c} here but {checkpoint} in the checkpoint: this config does not \
                     belong to it"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The text encoder's head count from `clip_name` (OpenAI's CLIP models).
    pub fn text_heads(&self) -> Option<usize> {
        match self.clip_name.as_deref()? {
            "ViT-B/32" | "ViT-B/16" | "RN50" | "RN101" => Some(8),
            "RN50x4" => Some(10),
            "ViT-L/14" | "ViT-L/14@336px" => Some(12),
            _ => None,
        }
    }
}
