//! `text_encoder/config.json`: the hyper-parameters of transformers' `CLIPTextConfig`
//! (`transformers/models/clip/configuration_clip.py`). Unknown fields (`bos_token_id`,
//! `projection_dim`, `torch_dtype`, ...) are ignored; a full `CLIPConfig` with a nested
//! `text_config` is accepted too.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, read_json, require_file};

/// The MLP activation (`hidden_act`), as transformers' `ACT2FN` defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)` — OpenAI CLIP's, used by ViT-B/32 (the ITHQ text encoder).
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact erf GELU (`nn.functional.gelu`).
    #[serde(rename = "gelu")]
    Gelu,
    /// Tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
}

/// Hyper-parameters of the CLIP text transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTextConfig {
    /// Number of token embeddings (49408 for OpenAI CLIP).
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    /// Model width (512 for ViT-B/32).
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    /// Width of the MLP (2048).
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    /// Number of encoder layers (12).
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads per layer (8).
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    /// Length of the position table (77).
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// MLP activation.
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: Activation,
    /// Epsilon of every LayerNorm (1e-5).
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// `initializer_factor` of transformers' `_init_weights` (used only for fresh, trainable models).
    #[serde(default = "defaults::initializer_factor")]
    pub initializer_factor: f64,
}

mod defaults {
    // transformers' CLIPTextConfig defaults (they equal openai/clip-vit-base-patch32).
    pub fn vocab_size() -> usize {
        49408
    }
    pub fn hidden_size() -> usize {
        512
    }
    pub fn intermediate_size() -> usize {
        2048
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        8
    }
    pub fn max_position_embeddings() -> usize {
        77
    }
    pub fn hidden_act() -> super::Activation {
        super::Activation::QuickGelu
    }
    pub fn layer_norm_eps() -> f64 {
        1e-5
    }
    pub fn initializer_factor() -> f64 {
        1.0
    }
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self::vit_base_patch32()
    }
}

impl ClipTextConfig {
    /// The text tower of `openai/clip-vit-base-patch32` (the ITHQ `text_encoder`).
    pub fn vit_base_patch32() -> Self {
        Self {
            vocab_size: defaults::vocab_size(),
            hidden_size: defaults::hidden_size(),
            intermediate_size: defaults::intermediate_size(),
            num_hidden_layers: defaults::num_hidden_layers(),
            num_attention_heads: defaults::num_attention_heads(),
            max_position_embeddings: defaults::max_position_embeddings(),
            hidden_act: defaults::hidden_act(),
            layer_norm_eps: defaults::layer_norm_eps(),
            initializer_factor: defaults::initializer_factor(),
        }
    }

    /// Parses a `CLIPTextConfig` JSON, or the `text_config` of a full `CLIPConfig`.
    pub fn from_json_str(text: &str) -> std::result::Result<Self, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let value = match value.get("text_config") {
            Some(inner) if inner.is_object() => inner.clone(),
            _ => value,
        };
        serde_json::from_value(value)
    }

    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: serde_json::Value = read_json(path)?;
        let text = value.to_string();
        let config = Self::from_json_str(&text).map_err(|source| Error::Json {
            path: path.to_owned(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `<folder>/config.json` (a `text_encoder/` folder).
    pub fn from_pretrained(folder: &Path) -> Result<Self> {
        Self::from_file(&require_file(folder, "config.json")?)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks that the sizes are usable (non-zero, width divisible by heads).
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, value) in sizes {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::Config(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(Error::Config(format!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }

    /// Every weight of `CLIPTextModel` with its shape, in transformers' key names.
    pub fn expected_weights(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (self.hidden_size, self.intermediate_size);
        let mut out = vec![
            (
                "text_model.embeddings.token_embedding.weight".to_string(),
                vec![self.vocab_size, d],
            ),
            (
                "text_model.embeddings.position_embedding.weight".to_string(),
                vec![self.max_position_embeddings, d],
            ),
        ];
        for i in 0..self.num_hidden_layers {
            let p = format!("text_model.encoder.layers.{i}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                out.push((format!("{p}.self_attn.{proj}.weight"), vec![d, d]));
                out.push((format!("{p}.self_attn.{proj}.bias"), vec![d]));
            }
            for norm in ["layer_norm1", "layer_norm2"] {
                out.push((format!("{p}.{norm}.weight"), vec![d]));
                out.push((format!("{p}.{norm}.bias"), vec![d]));
            }
            out.push((format!("{p}.mlp.fc1.weight"), vec![f, d]));
            out.push((format!("{p}.mlp.fc1.bias"), vec![f]));
            out.push((format!("{p}.mlp.fc2.weight"), vec![d, f]));
            out.push((format!("{p}.mlp.fc2.bias"), vec![d]));
        }
        out.push(("text_model.final_layer_norm.weight".to_string(), vec![d]));
        out.push(("text_model.final_layer_norm.bias".to_string(), vec![d]));
        out
    }

    /// Number of parameters (63,165,952 for ViT-B/32).
    pub fn num_parameters(&self) -> usize {
        self.expected_weights()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_config_and_counts_parameters() {
        let text = r#"{"architectures":["CLIPTextModel"],"attention_dropout":0.0,"bos_token_id":0,
            "eos_token_id":2,"hidden_act":"quick_gelu","hidden_size":512,"initializer_factor":1.0,
            "initializer_range":0.02,"intermediate_size":2048,"layer_norm_eps":1e-05,
            "max_position_embeddings":77,"model_type":"clip_text_model","num_attention_heads":8,
            "num_hidden_layers":12,"pad_token_id":1,"projection_dim":512,"torch_dtype":"float16",
            "vocab_size":49408}"#;
        let config = ClipTextConfig::from_json_str(text).unwrap();
        assert_eq!(config, ClipTextConfig::vit_base_patch32());
        assert_eq!(config.num_parameters(), 63_165_952);
        assert_eq!(config.expected_weights().len(), 196);
    }

    #[test]
    fn nested_text_config_and_gelu_variants() {
        let config = ClipTextConfig::from_json_str(
            r#"{"text_config":{"hidden_act":"gelu","hidden_size":64}}"#,
        )
        .unwrap();
        assert_eq!(config.hidden_act, Activation::Gelu);
        assert_eq!(config.hidden_size, 64);
        let tanh = ClipTextConfig::from_json_str(r#"{"hidden_act":"gelu_pytorch_tanh"}"#).unwrap();
        assert_eq!(tanh.hidden_act, Activation::GeluTanh);
        assert!(ClipTextConfig::from_json_str(r#"{"hidden_act":"swish"}"#).is_err());
    }

    #[test]
    fn rejects_indivisible_heads() {
        let mut config = ClipTextConfig::vit_base_patch32();
        config.num_attention_heads = 7;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("not divisible"), "{err}");
    }
}
