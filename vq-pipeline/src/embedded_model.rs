//! The project's embedded default model: a small VQ-Diffusion trained on the procedural
//! shape world (`shape-world` crate) by `experiments`' `train_embedded` binary, shipped in the
//! repository at `models/shape-world/` in the diffusers layout and compiled into the crate with
//! the `embedded-model` feature (on by default). It is what `vqd generate` uses when no
//! `--model` is given, so the main job works offline, from any directory, also for an installed
//! binary.
//!
//! On first use the files are unpacked into a folder named by their content hash under the
//! user's cache (`$VQD_CACHE`, else `$XDG_CACHE_HOME/vq-diffusion`, else
//! `~/.cache/vq-diffusion`), written to a temporary folder and renamed into place, so
//! concurrent first runs and interrupted ones never leave a partial model behind.
//!
//! Lookup order of [`default_model_dir`]: the `VQD_DEFAULT_MODEL` environment variable (a
//! folder), then the embedded model.

use std::path::{Path, PathBuf};

use crate::error::io;
use crate::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/embedded_model.rs"));

/// Environment variable naming the default model folder (overrides the embedded one).
pub const DEFAULT_MODEL_ENV: &str = "VQD_DEFAULT_MODEL";

/// Environment variable naming the cache folder the embedded model is unpacked to.
pub const CACHE_ENV: &str = "VQD_CACHE";

/// Where the shipped model lives in the source tree, relative to the workspace root.
pub const EMBEDDED_MODEL_RELATIVE: &str = "models/shape-world";

/// Whether this build carries the embedded model.
pub fn has_embedded_model() -> bool {
    !EMBEDDED_FILES.is_empty()
}

/// The cache folder of the project (see the module docs).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_ENV) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("vq-diffusion"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("vq-diffusion"))
}

/// Unpacks the embedded model into `cache` (if it is not there yet) and returns its folder.
pub fn unpack_embedded_model(cache: &Path) -> Result<PathBuf> {
    if !has_embedded_model() {
        return Err(Error::ModelNotFound {
            model: "embedded".into(),
            reason: "this build has no embedded model (the `embedded-model` feature is off); \
                     pass --model or set VQD_DEFAULT_MODEL"
                .into(),
        });
    }
    let dir = cache.join(format!("shape-world-{EMBEDDED_HASH}"));
    if dir.join("model_index.json").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache).map_err(io(cache))?;
    let tmp = cache.join(format!(
        ".shape-world-{EMBEDDED_HASH}.tmp-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, bytes) in EMBEDDED_FILES {
        let path = tmp.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process may have finished first.
        if !dir.join("model_index.json").is_file() {
            return Err(io(&dir)(e));
        }
    }
    Ok(dir)
}

/// The default model folder (see the module docs), or an [`Error::ModelNotFound`] that says
/// where it looked and what to do.
pub fn default_model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DEFAULT_MODEL_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(Error::ModelNotFound {
                model: dir.display().to_string(),
                reason: format!("{DEFAULT_MODEL_ENV} names a folder that does not exist"),
            })
        };
    }
    let cache = cache_dir().ok_or_else(|| Error::ModelNotFound {
        model: "embedded".into(),
        reason: format!("no cache folder to unpack the embedded model to: set {CACHE_ENV} or HOME"),
    })?;
    unpack_embedded_model(&cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_unpacks_once_and_completely() {
        if !has_embedded_model() {
            return;
        }
        let cache = tempfile::tempdir().unwrap();
        let dir = unpack_embedded_model(cache.path()).unwrap();
        let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(EMBEDDED_MODEL_RELATIVE);
        for (name, bytes) in EMBEDDED_FILES {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), *bytes, "{name}");
            assert_eq!(std::fs::read(shipped.join(name)).unwrap(), *bytes, "{name}");
        }
        // A second call reuses the folder; nothing temporary is left behind.
        assert_eq!(unpack_embedded_model(cache.path()).unwrap(), dir);
        let leftovers: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
