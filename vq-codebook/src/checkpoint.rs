//! Training checkpoints: one safetensors file holding every model tensor under its diffusers key
//! (so the file loads directly with [`VqModel::load_weights`](crate::VqModel::load_weights)), the
//! training state under `training.*` keys (EMA statistics, last-use steps of the codes), and in
//! the safetensors metadata the step, the model config and the training config as JSON.
//!
//! Writes are atomic: the file is written to `<path>.tmp` in the same directory, flushed to disk
//! and renamed over `<path>`, so a crash leaves either the old or the new checkpoint, never a
//! torn one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::config::VqModelConfig;
use crate::error::{Error, Result};

/// Value of the `format` metadata entry.
pub const CHECKPOINT_FORMAT: &str = "vq-codebook-checkpoint/1";

/// Everything a checkpoint holds.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Training steps completed.
    pub step: u64,
    /// The model configuration.
    pub model_config: VqModelConfig,
    /// The training configuration as JSON (informational; resuming uses the caller's).
    pub train_config_json: String,
    /// Model tensors (diffusers keys) and `training.*` state tensors.
    pub tensors: HashMap<String, Tensor>,
}

fn checkpoint_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The temporary file a checkpoint is written to before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

impl Checkpoint {
    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let metadata = HashMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            ("step".to_string(), self.step.to_string()),
            (
                "model_config".to_string(),
                self.model_config.to_json_string(),
            ),
            ("train_config".to_string(), self.train_config_json.clone()),
        ]);
        let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            tensors.push((name.clone(), t.contiguous()?));
        }
        let tmp = temp_path(path);
        safetensors::serialize_to_file(tensors, Some(metadata), &tmp)
            .map_err(|e| checkpoint_error(&tmp, e.to_string()))?;
        let file = std::fs::File::open(&tmp).map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        file.sync_all().map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(())
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| checkpoint_error(path, e.to_string()))?;
        let meta = header
            .metadata()
            .clone()
            .ok_or_else(|| checkpoint_error(path, "no metadata (not a vq-codebook checkpoint)"))?;
        let get = |key: &str| {
            meta.get(key)
                .cloned()
                .ok_or_else(|| checkpoint_error(path, format!("metadata lacks `{key}`")))
        };
        let format = get("format")?;
        if format != CHECKPOINT_FORMAT {
            return Err(checkpoint_error(
                path,
                format!("format {format:?}, expected {CHECKPOINT_FORMAT:?}"),
            ));
        }
        let step = get("step")?
            .parse()
            .map_err(|e| checkpoint_error(path, format!("bad step: {e}")))?;
        let model_config = VqModelConfig::from_json_str(&get("model_config")?)?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| checkpoint_error(path, e.to_string()))?;
        Ok(Self {
            step,
            model_config,
            train_config_json: get("train_config")?,
            tensors,
        })
    }

    /// The tensor `name`, or an error naming the checkpoint and key.
    pub fn tensor(&self, name: &str, path: &Path) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| checkpoint_error(path, format!("missing tensor `{name}`")))
    }
}
