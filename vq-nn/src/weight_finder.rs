//! Where a diffusers or transformers model folder keeps its weights: `<stem>.safetensors` or
//! `<stem>.bin`, optionally the hub's half-precision copies `<stem>.fp16.safetensors` /
//! `<stem>.fp16.bin` (the [`Variant`]). diffusers models use the stem
//! `diffusion_pytorch_model` for both formats; transformers models write `model.safetensors`
//! and `pytorch_model.bin`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Weight-file variant: the default files or the hub's `fp16` copies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// `diffusion_pytorch_model.safetensors`, `model.safetensors`, … (or `.bin`).
    #[default]
    Default,
    /// `diffusion_pytorch_model.fp16.safetensors`, … (or `.fp16.bin`).
    Fp16,
}

impl Variant {
    fn infix(self) -> &'static str {
        match self {
            Variant::Default => "",
            Variant::Fp16 => ".fp16",
        }
    }
}

/// The weight-file stems of a library's model folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightNames {
    /// Stem of the safetensors file.
    pub safetensors: &'static str,
    /// Stem of the PyTorch file.
    pub bin: &'static str,
}

impl WeightNames {
    /// diffusers models (`ModelMixin.save_pretrained`).
    pub const DIFFUSERS: WeightNames = WeightNames {
        safetensors: "diffusion_pytorch_model",
        bin: "diffusion_pytorch_model",
    };
    /// transformers models (`PreTrainedModel.save_pretrained`).
    pub const TRANSFORMERS: WeightNames = WeightNames {
        safetensors: "model",
        bin: "pytorch_model",
    };

    /// File names tried for `variant`, in order of preference (safetensors first).
    pub fn candidates(self, variant: Variant) -> [String; 2] {
        let v = variant.infix();
        [
            format!("{}{v}.safetensors", self.safetensors),
            format!("{}{v}.bin", self.bin),
        ]
    }

    /// The first existing weight file of `folder`.
    pub fn find(self, folder: &Path, variant: Variant) -> Result<PathBuf> {
        let names = self.candidates(variant);
        names
            .iter()
            .map(|n| folder.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::MissingWeightFile {
                folder: folder.to_path_buf(),
                looked_for: names.to_vec(),
            })
    }
}

/// `folder` itself when it holds `config_name`, else `folder/component` when that does (so a
/// model loads from its own folder or from the pipeline root above it).
pub fn component_folder(folder: &Path, component: &str, config_name: &str) -> PathBuf {
    if !folder.join(config_name).is_file() && folder.join(component).join(config_name).is_file() {
        folder.join(component)
    } else {
        folder.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_preferred_file_and_names_what_it_tried() {
        let dir = tempfile::tempdir().unwrap();
        let names = WeightNames::TRANSFORMERS;
        let err = names.find(dir.path(), Variant::Default).unwrap_err();
        assert!(
            err.to_string()
                .contains("model.safetensors, pytorch_model.bin")
        );
        std::fs::write(dir.path().join("pytorch_model.bin"), b"").unwrap();
        assert!(
            names
                .find(dir.path(), Variant::Default)
                .unwrap()
                .ends_with("pytorch_model.bin")
        );
        std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
        assert!(
            names
                .find(dir.path(), Variant::Default)
                .unwrap()
                .ends_with("model.safetensors")
        );
        assert!(names.find(dir.path(), Variant::Fp16).is_err());
        assert_eq!(
            WeightNames::DIFFUSERS.candidates(Variant::Fp16),
            [
                "diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.fp16.bin"
            ]
        );
    }
}
