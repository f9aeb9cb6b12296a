//! `Transformer2DConfig`: diffusers' `transformer/config.json`, with the class defaults of
//! `Transformer2DModel.__init__` and its mode rules (docs/reference-behaviour.md §3.1): vectorized (discrete)
//! inputs ⇔ `num_vector_embeds` is set; `norm_type` `"layer_norm"` silently becomes
//! `"ada_norm"` when `num_embeds_ada_norm` is set. Continuous and patched inputs are refused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The fields of diffusers' `Transformer2DModel` config (unknown keys such as `_class_name`
/// and `_diffusers_version` are ignored). Defaults are diffusers' constructor defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Transformer2DConfig {
    /// Attention heads (ITHQ: 16).
    pub num_attention_heads: usize,
    /// Channels per head (ITHQ: 88); the inner width is `heads × head dim`.
    pub attention_head_dim: usize,
    /// Set only for continuous (latent image) inputs — unsupported here.
    pub in_channels: Option<usize>,
    /// Output channels of the continuous mode (unused in vectorized mode).
    pub out_channels: Option<usize>,
    /// Number of `BasicTransformerBlock`s (ITHQ: 36).
    pub num_layers: usize,
    /// Dropout probability (attention output projections and the feed-forward hidden layer).
    pub dropout: f64,
    /// GroupNorm groups of the continuous mode (unused here).
    pub norm_num_groups: usize,
    /// Width of the text states (ITHQ: 512); `None` = no cross-attention.
    pub cross_attention_dim: Option<usize>,
    /// Biases on `to_q`, `to_k`, `to_v`.
    pub attention_bias: bool,
    /// Latent grid side (`height = width = sample_size`; ITHQ: 32).
    pub sample_size: Option<usize>,
    /// Token classes embedded, mask included (ITHQ: 4097); `K - 1` classes are predicted.
    pub num_vector_embeds: Option<usize>,
    /// Set only for patched inputs — unsupported here.
    pub patch_size: Option<usize>,
    /// Feed-forward activation (ITHQ: `"geglu-approximate"`).
    pub activation_fn: String,
    /// Rows of the AdaLayerNorm timestep table (ITHQ: 100).
    pub num_embeds_ada_norm: Option<usize>,
    /// Continuous-mode option (unused here).
    pub use_linear_projection: bool,
    /// Attend only to the text in `attn1` — unsupported.
    pub only_cross_attention: bool,
    /// Second self-attention instead of cross-attention — unsupported.
    pub double_self_attention: bool,
    /// Compute attention scores in f32 for half-precision models.
    pub upcast_attention: bool,
    /// `"layer_norm"` (default) or `"ada_norm"`; see [`Transformer2DConfig::effective_norm_type`].
    pub norm_type: String,
    /// Affine parameters on `norm3` (the AdaLN inner norms never have them).
    pub norm_elementwise_affine: bool,
    /// LayerNorm epsilon.
    pub norm_eps: f64,
    /// Only `"default"` is supported.
    pub attention_type: String,
    /// Bias on `to_out.0`.
    pub attention_out_bias: bool,
}

impl Default for Transformer2DConfig {
    fn default() -> Self {
        Self {
            num_attention_heads: 16,
            attention_head_dim: 88,
            in_channels: None,
            out_channels: None,
            num_layers: 1,
            dropout: 0.0,
            norm_num_groups: 32,
            cross_attention_dim: None,
            attention_bias: false,
            sample_size: None,
            num_vector_embeds: None,
            patch_size: None,
            activation_fn: "geglu".into(),
            num_embeds_ada_norm: None,
            use_linear_projection: false,
            only_cross_attention: false,
            double_self_attention: false,
            upcast_attention: false,
            norm_type: "layer_norm".into(),
            norm_elementwise_affine: true,
            norm_eps: 1e-5,
            attention_type: "default".into(),
            attention_out_bias: true,
        }
    }
}

/// Normalisation used by `norm1`/`norm2` of every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormType {
    /// `AdaLayerNorm` conditioned on the timestep (VQ-Diffusion).
    AdaNorm,
    /// Plain `LayerNorm` (the timestep is then ignored).
    LayerNorm,
}

/// Feed-forward activations of diffusers' `FeedForward`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `"geglu-approximate"`: **not gated**, `z · sigmoid(1.702 z)` (`ApproximateGELU`).
    ApproximateGelu,
    /// `"gelu"`: exact (erf) GELU.
    Gelu,
    /// `"gelu-approximate"`: tanh GELU.
    GeluTanh,
    /// `"geglu"`: gated, `proj` to twice the width, `h · gelu(gate)`.
    Geglu,
}

impl Transformer2DConfig {
    /// The ITHQ transformer's configuration (`microsoft/vq-diffusion-ithq`, docs/reference-behaviour.md §5.3)
    /// with `num_layers` blocks.
    pub fn ithq(num_layers: usize) -> Self {
        Self {
            num_attention_heads: 16,
            attention_head_dim: 88,
            num_layers,
            cross_attention_dim: Some(512),
            attention_bias: true,
            sample_size: Some(32),
            num_vector_embeds: Some(4097),
            activation_fn: "geglu-approximate".into(),
            num_embeds_ada_norm: Some(100),
            ..Self::default()
        }
    }

    /// Parses `config.json` text and validates it.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text).map_err(|source| Error::Json {
            path: "config.json".into(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let cfg: Self = read_config(path.as_ref())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Refuses configurations this crate cannot run: continuous (`in_channels`) or patched
    /// (`patch_size`) inputs, a missing `num_vector_embeds`/`sample_size`, other norm types,
    /// attention variants, or activations.
    pub fn validate(&self) -> Result<()> {
        let unsupported = |m: String| Err(Error::Unsupported(m));
        if self.patch_size.is_some() {
            return unsupported(format!(
                "patched inputs (patch_size = {:?}) are not supported: only discrete (vectorized) inputs, i.e. num_vector_embeds set and in_channels/patch_size unset",
                self.patch_size
            ));
        }
        if self.in_channels.is_some() {
            return unsupported(format!(
                "continuous inputs (in_channels = {:?}) are not supported: only discrete (vectorized) inputs, i.e. num_vector_embeds set and in_channels/patch_size unset",
                self.in_channels
            ));
        }
        match self.num_vector_embeds {
            None => {
                return unsupported(
                    "num_vector_embeds is not set: this crate implements only the discrete (vectorized) input mode".into(),
                );
            }
            Some(k) if k < 2 => {
                return unsupported(format!("num_vector_embeds = {k}: need at least 2 classes"));
            }
            _ => {}
        }
        if self.sample_size.unwrap_or(0) == 0 {
            return unsupported("vectorized inputs need sample_size (the latent grid side)".into());
        }
        if self.num_layers == 0 {
            return unsupported("num_layers = 0: the denoiser needs at least one block".into());
        }
        if self.num_attention_heads == 0 || self.attention_head_dim == 0 {
            return unsupported("zero attention heads or head dimension".into());
        }
        let norm = self.effective_norm_type()?;
        if norm == NormType::AdaNorm && self.num_embeds_ada_norm.unwrap_or(0) == 0 {
            return unsupported("norm_type \"ada_norm\" needs num_embeds_ada_norm".into());
        }
        self.activation()?;
        if self.only_cross_attention || self.double_self_attention {
            return unsupported(
                "only_cross_attention / double_self_attention are not implemented".into(),
            );
        }
        if self.attention_type != "default" {
            return unsupported(format!(
                "attention_type {:?} (only \"default\")",
                self.attention_type
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return unsupported(format!("dropout {} outside [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// `norm_type` after diffusers' rule: `"layer_norm"` with `num_embeds_ada_norm` set
    /// becomes `"ada_norm"` (the ITHQ config has no `norm_type`).
    pub fn effective_norm_type(&self) -> Result<NormType> {
        match (self.norm_type.as_str(), self.num_embeds_ada_norm) {
            ("layer_norm", Some(_)) | ("ada_norm", _) => Ok(NormType::AdaNorm),
            ("layer_norm", None) => Ok(NormType::LayerNorm),
            (other, _) => Err(Error::Unsupported(format!(
                "norm_type {other:?} (supported: \"ada_norm\", \"layer_norm\")"
            ))),
        }
    }

    /// The feed-forward activation.
    pub fn activation(&self) -> Result<Activation> {
        match self.activation_fn.as_str() {
            "geglu-approximate" => Ok(Activation::ApproximateGelu),
            "gelu" => Ok(Activation::Gelu),
            "gelu-approximate" => Ok(Activation::GeluTanh),
            "geglu" => Ok(Activation::Geglu),
            other => Err(Error::Unsupported(format!(
                "activation_fn {other:?} (supported: geglu-approximate, gelu, gelu-approximate, geglu)"
            ))),
        }
    }

    /// Inner width `D = heads × head dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Embedded classes `K` (mask included).
    pub fn num_embeds(&self) -> usize {
        self.num_vector_embeds.unwrap_or(0)
    }

    /// Predicted classes `K - 1` (the mask class is embedded but not predicted).
    pub fn num_classes(&self) -> usize {
        self.num_embeds().saturating_sub(1)
    }

    /// Latent grid `(height, width)`.
    pub fn grid(&self) -> (usize, usize) {
        let s = self.sample_size.unwrap_or(0);
        (s, s)
    }

    /// Tokens per image `N = height × width`.
    pub fn num_latent_pixels(&self) -> usize {
        let (h, w) = self.grid();
        h * w
    }

    /// Hidden width of the feed-forward (`4 D`).
    pub fn ff_inner_dim(&self) -> usize {
        4 * self.inner_dim()
    }
}

/// Reads and parses a JSON config file; errors name the file.
pub(crate) fn read_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
