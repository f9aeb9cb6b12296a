//! Importing the original (Microsoft) VQ-Diffusion release: the `*.pth` training checkpoints of
//! microsoft/VQ-Diffusion (Gu et al. 2022; Tang et al. 2022) and the taming VQ-GANs they decode
//! with, converted into the diffusers layout this crate loads. docs/original-checkpoints.md
//! lists the released files, their layouts and what was verified.
//!
//! One concept per file: `state_dict` (named views into a lazily read `.pth`),
//! `transformer_keys` (the denoiser), `clip_keys` (the CLIP text tower in OpenAI's layout),
//! `taming_keys` (VQ-GANs in taming's key grammar), `code_remap` (the shrunk codebooks),
//! `original_config` (the YAML fields a checkpoint lacks), `convert` (the folder writer).

mod clip_keys;
mod code_remap;
mod convert;
mod original_config;
mod state_dict;
mod taming_keys;
mod transformer_keys;

pub use code_remap::{CodeRemap, RemapChoice};
#[cfg(test)]
pub(crate) use convert::imagenet_class_names;
pub use convert::{
    CLASS_NAMES_FILE, CLASS_PIPELINE, CLASS_TRANSFORMER, ConversionReport, ConvertOptions,
    convert_original,
};
pub use original_config::OriginalConfig;
pub use taming_keys::{OriginalQuantizer, OriginalVqGan};
pub use transformer_keys::{OriginalFamily, OriginalTransformer};
