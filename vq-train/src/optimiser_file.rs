//! The optimiser's state as a file: [`AdamW`]'s moments and step count (`vq-nn`'s optimiser,
//! shared with the VQ-VAE trainer) written atomically as safetensors and read back, so a
//! checkpoint folder holds everything an exact resume needs.

use std::path::Path;

use crate::{AdamW, Error, Result};

/// Saving and loading an [`AdamW`]'s state.
pub trait AdamWFile {
    /// Saves [`AdamW::state`] atomically as safetensors.
    fn save(&self, path: &Path) -> Result<()>;
    /// Loads a state saved by [`AdamWFile::save`]; every variable's moments must be there.
    fn load(&mut self, path: &Path) -> Result<()>;
}

impl AdamWFile for AdamW {
    fn save(&self, path: &Path) -> Result<()> {
        crate::save_tensors_atomic(path, &self.state()?)
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        let device = self.device();
        let state = candle_core::safetensors::load(path, &device).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(self.load_state(&state)?)
    }
}
