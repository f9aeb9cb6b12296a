//! Checkpoint files of a `text_encoder/` folder: transformers writes `model.safetensors`, older
//! snapshots (the ITHQ hub repo) `pytorch_model.bin` (a PyTorch zip pickle, read with candle's
//! `pickle` module). Keys are transformers' (`text_model.embeddings.token_embedding.weight`, ...);
//! transformers 5's `save_pretrained` writes the same keys without the `text_model.` prefix
//! (`embeddings.token_embedding.weight`, ...); such files are accepted and re-prefixed.
//! Every key the config predicts is checked for presence and shape before the model is built,
//! extra keys (the `position_ids` buffer of old files, a vision tower) are ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::ClipTextConfig;
use crate::error::{ClipError, Result};

/// Names searched in a `text_encoder/` folder, in order of preference.
pub const CHECKPOINT_NAMES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Finds the checkpoint in `folder`.
pub fn find_checkpoint(folder: &Path) -> Result<PathBuf> {
    CHECKPOINT_NAMES
        .iter()
        .map(|name| folder.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| ClipError::MissingFile {
            folder: folder.to_owned(),
            file: CHECKPOINT_NAMES.join(" or "),
        })
}

/// Reads every tensor of a `.safetensors` or PyTorch `.bin`/`.pth` file onto the CPU, as stored.
pub fn read_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(ClipError::MissingFile {
            folder: path.parent().map(Path::to_owned).unwrap_or_default(),
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let loaded = if is_safetensors {
        candle_core::safetensors::load(path, &Device::Cpu)
    } else {
        candle_core::pickle::read_all(path).map(|v| v.into_iter().collect())
    };
    let tensors = loaded.map_err(|source| ClipError::Checkpoint {
        path: path.to_owned(),
        source,
    })?;
    Ok(add_text_model_prefix(tensors))
}

/// Prefixes `text_model.` to every key of a checkpoint written without it (transformers ≥ 5
/// `CLIPTextModel.save_pretrained`); checkpoints that already use it are returned unchanged.
pub fn add_text_model_prefix(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let prefixed = tensors.keys().any(|k| k.starts_with("text_model."));
    let bare = tensors.contains_key("embeddings.token_embedding.weight");
    if prefixed || !bare {
        return tensors;
    }
    tensors
        .into_iter()
        .map(|(k, v)| (format!("text_model.{k}"), v))
        .collect()
}

/// Checks that every weight the config predicts is present with the predicted shape.
pub fn check_weights(
    file: &Path,
    tensors: &HashMap<String, Tensor>,
    config: &ClipTextConfig,
) -> Result<()> {
    for (key, expected) in config.expected_weights() {
        match tensors.get(&key) {
            None => {
                return Err(ClipError::MissingWeight {
                    file: file.to_owned(),
                    key,
                    expected,
                });
            }
            Some(t) if t.dims() != expected.as_slice() => {
                return Err(ClipError::ShapeMismatch {
                    file: file.to_owned(),
                    key,
                    expected,
                    found: t.dims().to_vec(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Reads and checks a checkpoint and wraps it in a `VarBuilder` converting to `dtype` on `device`.
pub fn checked_var_builder(
    path: &Path,
    config: &ClipTextConfig,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    let tensors = read_checkpoint(path)?;
    check_weights(path, &tensors, config)?;
    Ok(VarBuilder::from_tensors(tensors, dtype, device))
}
