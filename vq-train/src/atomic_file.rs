//! Crash-safe file writes: everything a training run leaves behind (checkpoints, optimiser
//! state, caches, exported weights, reports) is written to a temporary sibling and renamed into
//! place, so an interrupted run never leaves a half-written file that a resumed run would trust.
//! A rename within one folder is atomic on POSIX file systems.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::Result;
use crate::error::io;

/// `path` with `.tmp` appended to its file name.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file + rename), creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    create_parent(path)?;
    let tmp = temp_path(path);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Saves named tensors as safetensors atomically.
pub fn save_tensors_atomic(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    create_parent(path)?;
    let tmp = temp_path(path);
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Writes `value` as pretty JSON atomically.
pub fn write_json_atomic(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialisable values") + "\n";
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.json");
        write_json_atomic(&path, &serde_json::json!({"x": 1})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"x\": 1\n}\n"
        );
        assert!(!temp_path(&path).exists());
        let blocked = path.join("under-a-file");
        assert!(matches!(
            write_atomic(&blocked, b"x"),
            Err(crate::Error::Io { .. })
        ));
    }
}
