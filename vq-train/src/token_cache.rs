//! [`TokenCache`]: a dataset encoded to token grids once and reused across runs, invalidated by
//! a key — a hash of whatever the tokens depend on (the images or their generator, the VQ-VAE's
//! weights). The grids are one safetensors file (`tokens`), the key a text file beside it; both
//! are written atomically, the key last, so an interrupted write is never taken as current.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use crate::Result;

/// A cache file `path` (and `path` with the extension `key` beside it).
#[derive(Debug, Clone)]
pub struct TokenCache {
    path: PathBuf,
}

impl TokenCache {
    /// The cache at `path` (e.g. `RUN/tokens.safetensors`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn key_path(&self) -> PathBuf {
        self.path.with_extension("key")
    }

    /// The cached grids if they were stored under `key`.
    pub fn load(&self, key: &str) -> Option<Tensor> {
        if std::fs::read_to_string(self.key_path()).ok().as_deref() != Some(key) {
            return None;
        }
        candle_core::safetensors::load(&self.path, &Device::Cpu)
            .ok()?
            .remove("tokens")
    }

    /// Stores `tokens` under `key`.
    pub fn store(&self, key: &str, tokens: &Tensor) -> Result<()> {
        let _ = std::fs::remove_file(self.key_path());
        crate::save_tensors_atomic(
            &self.path,
            &HashMap::from([("tokens".to_string(), tokens.clone())]),
        )?;
        crate::write_atomic(&self.key_path(), key.as_bytes())
    }

    /// The cached grids for `key`, or `encode()`'s, stored for next time (`encode` may fail
    /// with the caller's own error type).
    pub fn load_or_encode<E: From<crate::Error>>(
        &self,
        key: &str,
        encode: impl FnOnce() -> std::result::Result<Tensor, E>,
    ) -> std::result::Result<Tensor, E> {
        if let Some(tokens) = self.load(key) {
            return Ok(tokens);
        }
        let tokens = encode()?;
        self.store(key, &tokens)?;
        Ok(tokens)
    }
}

/// A cache key from the files `paths` (each one's path, size and modification time) and any
/// further `parts` (captions, settings).
pub fn files_key<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
    parts: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut h = Sha256::new();
    for p in paths {
        h.update(p.display().to_string().as_bytes());
        if let Ok(m) = std::fs::metadata(p) {
            h.update(m.len().to_le_bytes());
            if let Ok(t) = m.modified().and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_err(std::io::Error::other)
            }) {
                h.update(t.as_nanos().to_le_bytes());
            }
        }
        h.update([0]);
    }
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_is_reused_under_its_key_and_rebuilt_under_another() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path().join("tokens.safetensors"));
        let grids = Tensor::new(&[[1u32, 2], [3, 4]], &Device::Cpu)?;
        let mut calls = 0;
        let mut get = |key: &str| -> Result<Tensor> {
            cache.load_or_encode(key, || {
                calls += 1;
                Ok(grids.clone())
            })
        };
        assert_eq!(get("a")?.to_vec2::<u32>()?, [[1, 2], [3, 4]]);
        get("a")?;
        get("b")?;
        assert_eq!(calls, 2);
        // a key written for other files differs
        let f = dir.path().join("x.png");
        std::fs::write(&f, b"1").unwrap();
        let k1 = files_key([f.as_path()], ["caption"]);
        std::fs::write(&f, b"22").unwrap();
        assert_ne!(k1, files_key([f.as_path()], ["caption"]));
        assert_ne!(
            files_key([f.as_path()], ["a"]),
            files_key([f.as_path()], ["b"])
        );
        Ok(())
    }
}
