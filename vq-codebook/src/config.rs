//! The `VQModel` configuration: the fields of diffusers' `vqvae/config.json`
//! (`diffusers/models/autoencoders/vq_model.py::VQModel.__init__`, same names and defaults),
//! with validation that turns every setting this implementation does not support into a clear
//! error instead of a silently different model.
//!
//! The ITHQ values (docs/reference-behaviour.md §4.1 / §5.3) are [`VqModelConfig::ithq`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Encoder block types of diffusers' `get_down_block` that a `VQModel` encoder can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownBlockType {
    /// `DownEncoderBlock2D`: resnets, then an optional stride-2 downsampler.
    DownEncoderBlock2D,
    /// `AttnDownEncoderBlock2D`: each resnet followed by a spatial self-attention block.
    AttnDownEncoderBlock2D,
}

impl DownBlockType {
    /// Whether the block has attention after each resnet.
    pub fn has_attention(self) -> bool {
        matches!(self, DownBlockType::AttnDownEncoderBlock2D)
    }
}

/// Decoder block types of diffusers' `get_up_block` that a `VQModel` decoder can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpBlockType {
    /// `UpDecoderBlock2D`: resnets, then an optional nearest-×2 upsampler.
    UpDecoderBlock2D,
    /// `AttnUpDecoderBlock2D`: each resnet followed by a spatial self-attention block.
    AttnUpDecoderBlock2D,
}

impl UpBlockType {
    /// Whether the block has attention after each resnet.
    pub fn has_attention(self) -> bool {
        matches!(self, UpBlockType::AttnUpDecoderBlock2D)
    }
}

/// diffusers' `VQModel` config (`vqvae/config.json`). Field names and defaults are those of
/// `VQModel.__init__`; fields starting with `_` (`_class_name`, `_diffusers_version`, ...) are
/// ignored, any other unknown field is rejected by [`VqModelConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VqModelConfig {
    /// Image channels into the encoder.
    pub in_channels: usize,
    /// Image channels out of the decoder.
    pub out_channels: usize,
    /// Encoder block types, one per resolution level.
    pub down_block_types: Vec<DownBlockType>,
    /// Decoder block types, one per resolution level (lowest resolution first).
    pub up_block_types: Vec<UpBlockType>,
    /// Channels of each level (encoder order).
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder block (decoder blocks have one more).
    pub layers_per_block: usize,
    /// Activation: `"silu"` (or its alias `"swish"`) only.
    pub act_fn: String,
    /// Channels of the encoder output / decoder input (`z_channels`).
    pub latent_channels: usize,
    /// Nominal latent size (unused by the model).
    pub sample_size: usize,
    /// Codebook size.
    pub num_vq_embeddings: usize,
    /// GroupNorm groups everywhere.
    pub norm_num_groups: usize,
    /// Codebook vector size; `None` means `latent_channels`.
    pub vq_embed_dim: Option<usize>,
    /// Latent scaling factor (unused by `VQModel`).
    pub scaling_factor: f64,
    /// Decoder normalisation: only `"group"` is supported (`"spatial"` is MoVQ's).
    pub norm_type: String,
    /// Whether the mid blocks have attention.
    pub mid_block_add_attention: bool,
    /// Whether diffusers' `decode(h, force_not_quantize=True)` treats `h` as token ids.
    pub lookup_from_codebook: bool,
    /// Half-precision upcast hint (unused on CPU f32).
    pub force_upcast: bool,
    /// Fields not listed above other than `_`-prefixed bookkeeping (rejected by `validate`).
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

impl Default for VqModelConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec![DownBlockType::DownEncoderBlock2D],
            up_block_types: vec![UpBlockType::UpDecoderBlock2D],
            block_out_channels: vec![64],
            layers_per_block: 1,
            act_fn: "silu".into(),
            latent_channels: 3,
            sample_size: 32,
            num_vq_embeddings: 256,
            norm_num_groups: 32,
            vq_embed_dim: None,
            scaling_factor: 0.18215,
            norm_type: "group".into(),
            mid_block_add_attention: true,
            lookup_from_codebook: false,
            force_upcast: false,
            unknown: BTreeMap::new(),
        }
    }
}

impl VqModelConfig {
    /// The ITHQ VQ-VAE of `microsoft/vq-diffusion-ithq` (`vqvae/config.json`): f = 8, channels
    /// 64/128/256/512, attention at the 32×32 level, 4096 × 128 codebook.
    pub fn ithq() -> Self {
        use DownBlockType::*;
        use UpBlockType::*;
        Self {
            down_block_types: vec![
                DownEncoderBlock2D,
                DownEncoderBlock2D,
                DownEncoderBlock2D,
                AttnDownEncoderBlock2D,
            ],
            up_block_types: vec![
                AttnUpDecoderBlock2D,
                UpDecoderBlock2D,
                UpDecoderBlock2D,
                UpDecoderBlock2D,
            ],
            block_out_channels: vec![64, 128, 256, 512],
            layers_per_block: 2,
            latent_channels: 256,
            num_vq_embeddings: 4096,
            vq_embed_dim: Some(128),
            ..Self::default()
        }
    }

    /// Parses a `config.json` text and validates it.
    pub fn from_json_str(text: &str) -> Result<Self> {
        Self::parse(text, Path::new("<string>"))
    }

    /// Reads and validates a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut config: Self = serde_json::from_str(text).map_err(|source| Error::ConfigParse {
            path: path.to_path_buf(),
            source,
        })?;
        // Bookkeeping fields (`_class_name`, `_diffusers_version`, `_name_or_path`, ...).
        config.unknown.retain(|key, _| !key.starts_with('_'));
        config.validate()?;
        Ok(config)
    }

    /// The config as diffusers writes it (`_class_name` first, sorted keys, 2-space indent).
    pub fn to_json_string(&self) -> String {
        let mut value = serde_json::to_value(self).expect("config serialises");
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("_class_name".into(), "VQModel".into());
        }
        serde_json::to_string_pretty(&value).expect("config serialises") + "\n"
    }

    /// Codebook vector size (`vq_embed_dim`, defaulting to `latent_channels`).
    pub fn embed_dim(&self) -> usize {
        self.vq_embed_dim.unwrap_or(self.latent_channels)
    }

    /// Spatial downsampling factor between images and token grids: `2^(levels − 1)`.
    pub fn downsampling_factor(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }

    /// Checks every setting that changes the network; the first problem is returned.
    pub fn validate(&self) -> Result<()> {
        let unsupported = |field: &str, value: String, reason: &str| {
            Err(Error::UnsupportedConfig {
                field: field.into(),
                value,
                reason: reason.into(),
            })
        };
        if let Some((field, value)) = self.unknown.iter().next() {
            return unsupported(
                field,
                value.to_string(),
                "unknown VQModel field; it may change the network, so it is rejected rather than ignored",
            );
        }
        if !matches!(self.act_fn.as_str(), "silu" | "swish") {
            return unsupported(
                "act_fn",
                format!("{:?}", self.act_fn),
                "only \"silu\" is supported",
            );
        }
        if self.norm_type != "group" {
            return unsupported(
                "norm_type",
                format!("{:?}", self.norm_type),
                "only \"group\" is supported (\"spatial\" is MoVQ's decoder)",
            );
        }
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return unsupported(
                "block_out_channels",
                "[]".into(),
                "needs at least one level",
            );
        }
        if self.down_block_types.len() != levels {
            return unsupported(
                "down_block_types",
                format!("{:?}", self.down_block_types),
                &format!("needs one entry per block_out_channels entry ({levels})"),
            );
        }
        if self.up_block_types.len() != levels {
            return unsupported(
                "up_block_types",
                format!("{:?}", self.up_block_types),
                &format!("needs one entry per block_out_channels entry ({levels})"),
            );
        }
        if self.layers_per_block == 0 {
            return unsupported("layers_per_block", "0".into(), "needs at least one resnet");
        }
        let groups = self.norm_num_groups;
        if groups == 0 {
            return unsupported("norm_num_groups", "0".into(), "must be positive");
        }
        if let Some(&c) = self
            .block_out_channels
            .iter()
            .find(|&&c| c == 0 || c % groups != 0)
        {
            return unsupported(
                "block_out_channels",
                format!("{:?}", self.block_out_channels),
                &format!(
                    "every entry must be a positive multiple of norm_num_groups = {groups} ({c} is not)"
                ),
            );
        }
        for (field, value) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("latent_channels", self.latent_channels),
            ("num_vq_embeddings", self.num_vq_embeddings),
            ("vq_embed_dim", self.embed_dim()),
        ] {
            if value == 0 {
                return unsupported(field, "0".into(), "must be positive");
            }
        }
        if self.num_vq_embeddings > u32::MAX as usize {
            return unsupported(
                "num_vq_embeddings",
                self.num_vq_embeddings.to_string(),
                "token ids are u32",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub file's content (docs/reference-behaviour.md §5.3), plus the bookkeeping fields diffusers writes.
    const ITHQ_JSON: &str = r#"{
      "_class_name": "VQModel",
      "_diffusers_version": "0.8.0.dev0",
      "act_fn": "silu",
      "block_out_channels": [64, 128, 256, 512],
      "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
      "in_channels": 3,
      "latent_channels": 256,
      "layers_per_block": 2,
      "norm_num_groups": 32,
      "num_vq_embeddings": 4096,
      "out_channels": 3,
      "sample_size": 32,
      "up_block_types": ["AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
      "vq_embed_dim": 128
    }"#;

    #[test]
    fn hub_config_parses_to_ithq() {
        let config = VqModelConfig::from_json_str(ITHQ_JSON).unwrap();
        assert_eq!(config, VqModelConfig::ithq());
        assert_eq!(config.downsampling_factor(), 8);
        assert_eq!(config.embed_dim(), 128);
    }

    #[test]
    fn round_trips_through_json() {
        let config = VqModelConfig::ithq();
        let again = VqModelConfig::from_json_str(&config.to_json_string()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn rejects_what_would_change_the_model() {
        let err = |json: &str| VqModelConfig::from_json_str(json).unwrap_err().to_string();
        assert!(err(r#"{"norm_type": "spatial"}"#).contains("norm_type"));
        assert!(err(r#"{"act_fn": "gelu"}"#).contains("act_fn"));
        assert!(err(r#"{"some_new_switch": true}"#).contains("some_new_switch"));
        assert!(
            err(r#"{"down_block_types": ["CrossAttnDownBlock2D"]}"#)
                .contains("CrossAttnDownBlock2D")
        );
        assert!(err(r#"{"block_out_channels": [64, 128]}"#).contains("down_block_types"));
        assert!(
            err(r#"{"block_out_channels": [48], "norm_num_groups": 32}"#)
                .contains("norm_num_groups")
        );
        assert!(
            VqModelConfig::from_json_str(r#"{"_name_or_path": "x", "act_fn": "swish"}"#).is_ok()
        );
    }
}
