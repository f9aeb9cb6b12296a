//! [`Condition2ImageConfig`]: the hyper-parameters of the original VQ-Diffusion's
//! class-conditional denoiser (`Condition2ImageTransformer` of microsoft/VQ-Diffusion, the
//! ImageNet models; Gu et al. 2022 §4.3) and of its unconditional sibling
//! (`UnCondition2ImageTransformer`, the same blocks with a plain LayerNorm where the class
//! enters: `num_labels = 0`), as this crate stores them in `transformer/config.json`
//! (`"_class_name"` one of those two names; diffusers has neither). Unknown fields other than
//! `_`-prefixed bookkeeping are refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Hyper-parameters of [`crate::Condition2ImageTransformer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition2ImageConfig {
    /// Number of blocks (ImageNet: 24).
    pub num_layers: usize,
    /// Width `D` (ImageNet: 512).
    pub width: usize,
    /// Attention heads (ImageNet: 16, head dim 32).
    pub num_attention_heads: usize,
    /// Token classes embedded, mask included (`K + 1`; ImageNet: 975).
    pub num_vector_embeds: usize,
    /// Rows of the timestep AdaLN tables (`T`, 100).
    pub num_embeds_ada_norm: usize,
    /// Class labels the model knows (ImageNet: 1000); the label equal to it is "no class".
    /// `0`: an unconditional model (`UnCondition2ImageTransformer`), whose only label is `0`.
    pub num_labels: usize,
    /// Rows of each block's class AdaLN table: `num_labels` (the null class is the mean row)
    /// or `num_labels + 1` (a learned null row); `0` for an unconditional model.
    pub class_table_rows: usize,
    /// Rows of the height and width position tables (ImageNet: 32 × 32, although its token
    /// grid is 16 × 16: the first `N` positions of the flattened table are used).
    pub position_table: [usize; 2],
    /// Side of the (square) token grid (ImageNet: 16).
    pub sample_size: usize,
    /// Feed-forward hidden width as a multiple of `D` (4).
    #[serde(default = "four")]
    pub mlp_hidden_times: usize,
    /// LayerNorm epsilon (1e-5).
    #[serde(default = "eps")]
    pub norm_eps: f64,
    /// Fields not listed above (bookkeeping fields starting with `_` are allowed).
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

fn four() -> usize {
    4
}
fn eps() -> f64 {
    1e-5
}

impl Condition2ImageConfig {
    /// Parses and validates a config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let config: Self = crate::config::read_config(path.as_ref())?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses what the model cannot honour.
    pub fn validate(&self) -> Result<()> {
        let unknown: Vec<&String> = self
            .unknown
            .keys()
            .filter(|k| !k.starts_with('_'))
            .collect();
        let fail = |m: String| Err(Error::Unsupported(m));
        if !unknown.is_empty() {
            return fail(format!(
                "unknown Condition2ImageTransformer config field(s) {unknown:?}"
            ));
        }
        if let Some(class) = self.unknown.get("_class_name").and_then(|v| v.as_str())
            && class != self.class_name()
        {
            return fail(format!(
                "_class_name is {class:?} but num_labels {} makes this a {:?}",
                self.num_labels,
                self.class_name()
            ));
        }
        if self.num_layers == 0 || self.width == 0 || self.num_attention_heads == 0 {
            return fail("num_layers, width and num_attention_heads must be positive".into());
        }
        if !self.width.is_multiple_of(self.num_attention_heads) {
            return fail(format!(
                "width {} is not divisible by {} heads",
                self.width, self.num_attention_heads
            ));
        }
        if self.num_vector_embeds < 2 || self.num_embeds_ada_norm == 0 {
            return fail("num_vector_embeds ≥ 2 and num_embeds_ada_norm ≥ 1".into());
        }
        if self.is_unconditional() {
            if self.class_table_rows != 0 {
                return fail(format!(
                    "class_table_rows {} for an unconditional model (num_labels 0): must be 0",
                    self.class_table_rows
                ));
            }
        } else if self.class_table_rows != self.num_labels
            && self.class_table_rows != self.num_labels + 1
        {
            return fail(format!(
                "class_table_rows {} must be num_labels {} (mean-row null class) or one more \
                 (learned null class)",
                self.class_table_rows, self.num_labels
            ));
        }
        let [h, w] = self.position_table;
        if self.sample_size == 0 || self.sample_size * self.sample_size > h * w {
            return fail(format!(
                "a {0}×{0} token grid does not fit position tables of {h}×{w}",
                self.sample_size
            ));
        }
        Ok(())
    }

    /// Content classes `K` (the mask is class `K`).
    pub fn num_classes(&self) -> usize {
        self.num_vector_embeds - 1
    }

    /// Tokens per image.
    pub fn num_tokens(&self) -> usize {
        self.sample_size * self.sample_size
    }

    /// The label that means "no class" (classifier-free guidance's unconditional pass).
    pub fn null_label(&self) -> usize {
        self.num_labels
    }

    /// Whether the null class has a learned row (else it is the mean row).
    pub fn has_learned_null(&self) -> bool {
        self.class_table_rows > self.num_labels
    }

    /// Whether the model is unconditional (`num_labels = 0`: no class AdaLN).
    pub fn is_unconditional(&self) -> bool {
        self.num_labels == 0
    }

    /// The original's class name of this model: `"Condition2ImageTransformer"`, or
    /// `"UnCondition2ImageTransformer"` for an unconditional one (the config's `_class_name`).
    pub fn class_name(&self) -> &'static str {
        if self.is_unconditional() {
            UNCONDITIONAL_CLASS_NAME
        } else {
            CLASS_CONDITIONAL_CLASS_NAME
        }
    }
}

/// `_class_name` of a class-conditional [`crate::Condition2ImageTransformer`] config.
pub const CLASS_CONDITIONAL_CLASS_NAME: &str = "Condition2ImageTransformer";
/// `_class_name` of an unconditional one.
pub const UNCONDITIONAL_CLASS_NAME: &str = "UnCondition2ImageTransformer";

#[cfg(test)]
mod tests {
    use super::*;

    fn config(num_labels: usize, rows: usize) -> Condition2ImageConfig {
        Condition2ImageConfig {
            num_layers: 1,
            width: 8,
            num_attention_heads: 2,
            num_vector_embeds: 5,
            num_embeds_ada_norm: 10,
            num_labels,
            class_table_rows: rows,
            position_table: [2, 2],
            sample_size: 2,
            mlp_hidden_times: 4,
            norm_eps: 1e-5,
            unknown: BTreeMap::new(),
        }
    }

    #[test]
    fn an_unconditional_config_has_no_class_table_and_its_own_name() {
        let c = config(0, 0);
        c.validate().unwrap();
        assert!(c.is_unconditional());
        assert_eq!(c.class_name(), "UnCondition2ImageTransformer");
        assert_eq!(c.null_label(), 0);
        let e = config(0, 3).validate().unwrap_err().to_string();
        assert!(e.contains("class_table_rows 3"), "{e}");
        let mut named = config(0, 0);
        named.unknown.insert(
            "_class_name".into(),
            serde_json::json!("Condition2ImageTransformer"),
        );
        let e = named.validate().unwrap_err().to_string();
        assert!(e.contains("UnCondition2ImageTransformer"), "{e}");
        let mut named = config(4, 5);
        named.unknown.insert(
            "_class_name".into(),
            serde_json::json!("UnCondition2ImageTransformer"),
        );
        assert!(named.validate().is_err());
        config(4, 5).validate().unwrap();
        assert!(config(4, 6).validate().is_err());
    }
}
