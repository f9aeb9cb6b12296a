//! The project's embedded default model: a small VQ-Diffusion trained on the procedural
//! shape world (`shape-world` crate) by `experiments`' `train_embedded` binary and shipped in the
//! repository at `models/shape-world/` in the diffusers layout. It is what `vqd generate` uses
//! when no `--model` is given, so the main job works offline from a fresh clone.
//!
//! Lookup order: the `VQD_DEFAULT_MODEL` environment variable (a folder), then the folder in the
//! source tree this crate was built from.

use std::path::PathBuf;

use crate::{PipelineError, Result};

/// Environment variable naming the default model folder (overrides the shipped one).
pub const DEFAULT_MODEL_ENV: &str = "VQD_DEFAULT_MODEL";

/// Where the shipped model lives in the source tree, relative to the workspace root.
pub const EMBEDDED_MODEL_RELATIVE: &str = "models/shape-world";

/// The shipped model folder of the source tree this crate was built from.
pub fn embedded_model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(EMBEDDED_MODEL_RELATIVE)
}

/// The default model folder (see the module docs), or a [`PipelineError::ModelNotFound`] that
/// says where it looked and what to do.
pub fn default_model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DEFAULT_MODEL_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(PipelineError::ModelNotFound {
                model: dir.display().to_string(),
                reason: format!("{DEFAULT_MODEL_ENV} names a folder that does not exist"),
            })
        };
    }
    let dir = embedded_model_dir();
    if dir.join("model_index.json").is_file() {
        // Canonical form for messages and sidecars (no `..` segments).
        return Ok(dir.canonicalize().unwrap_or(dir));
    }
    Err(PipelineError::ModelNotFound {
        model: dir.display().to_string(),
        reason: format!(
            "the embedded default model is not in this build's source tree; pass --model \
             (a diffusers folder or a hub id such as microsoft/vq-diffusion-ithq), set \
             {DEFAULT_MODEL_ENV}, or rebuild it with `cargo run --release -p experiments --bin \
             train_embedded`"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_folder_is_under_the_workspace() {
        let dir = embedded_model_dir();
        assert!(dir.ends_with(EMBEDDED_MODEL_RELATIVE));
        assert!(dir.join("../../Cargo.toml").is_file());
    }
}
