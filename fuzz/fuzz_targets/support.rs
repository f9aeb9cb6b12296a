//! Shared by the fuzz targets (through `#[path]`): a per-process scratch file for parsers that
//! read from a path (the code path the pipeline uses), and reading every tensor of a weight file.

use std::path::{Path, PathBuf};

/// Writes `bytes` to `<tmp>/vqd-fuzz-<pid>/<name>` and returns the path.
pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vqd-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// Opens a weight file and reads every tensor in it, scanning each for non-finite values.
#[allow(dead_code)]
pub fn read_every_tensor(path: &Path) {
    let Ok(file) = vq_nn::WeightFile::open(path) else {
        return;
    };
    let keys: Vec<String> = file.keys().map(String::from).collect();
    for key in keys {
        let _ = file.check_finite(&key);
        let _ = file.tensor(&key, &candle_core::Device::Cpu);
    }
}
