//! The original denoiser (`Text2ImageTransformer`, the network of VQ-Diffusion-B and of ITHQ;
//! Gu et al. 2022 §4.1, the repository's `transformer_utils.py`) read from its state dict and
//! renamed to diffusers' `Transformer2DModel` (docs/original-checkpoints.md §"The denoiser").
//!
//! The mapping is a pure renaming — no reshapes, no transposes:
//! `content_emb.*` → `latent_image_embedding.*`; per block `ln1` / `ln1_1` / `ln2` →
//! `norm1` / `norm2` / `norm3`, `attn{1,2}.{query,key,value,proj}` →
//! `attn{1,2}.{to_q,to_k,to_v,to_out.0}`, `mlp.0` / `mlp.2` → `ff.net.0.proj` / `ff.net.2`;
//! `to_logits.0` / `.1` → `norm_out` / `out`. The unused causal `attn2.mask` buffers are dropped.
//! The head count is not stored (16 in every released network) and is an option.

use candle_core::Tensor;
use vq_transformer::Transformer2DConfig;

use super::state_dict::StateDict;
use crate::Result;

/// What kind of denoiser a checkpoint holds (told apart by its keys, not by a config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalFamily {
    /// `Text2ImageTransformer`: self-attention, cross-attention to CLIP text, `fc` feed-forward
    /// (the CC, COCO, CUB, LAION-human and ITHQ models).
    Text,
    /// `Condition2ImageTransformer`: class-label AdaLN before a convolutional feed-forward, no
    /// cross-attention (the ImageNet models).
    Class,
    /// `UnCondition2ImageTransformer` (FFHQ-style; none was released).
    Unconditional,
}

/// The denoiser's hyper-parameters, inferred from tensor shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalTransformer {
    /// Network family.
    pub family: OriginalFamily,
    /// Width `D` (`content_emb.emb.weight` columns).
    pub width: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Content classes `K` (`to_logits.1.weight` rows); the mask is class `K`.
    pub classes: usize,
    /// Diffusion steps `T` (rows of the AdaLN timestep tables).
    pub timesteps: usize,
    /// Width of the text states (`attn2.key` columns), for the text family.
    pub condition_width: Option<usize>,
    /// Rows of the height and width position tables.
    pub position_rows: (usize, usize),
    /// Hidden width of the feed-forward.
    pub ffn_hidden: usize,
}

const P: &str = "blocks.0.";

impl OriginalTransformer {
    /// Infers the hyper-parameters from `sd` (the keys under `transformer.transformer.`).
    pub(crate) fn infer(sd: &StateDict<'_>) -> Result<Self> {
        let family = if sd.contains(&format!("{P}attn1.query.weight"))
            && sd.contains(&format!("{P}attn2.key.weight"))
        {
            OriginalFamily::Text
        } else if sd.contains(&format!("{P}attn.query.weight")) {
            if sd.contains(&format!("{P}ln2.emb.weight")) {
                OriginalFamily::Class
            } else {
                OriginalFamily::Unconditional
            }
        } else {
            return Err(sd.error(format!(
                "no denoiser found: neither {P}attn1.query.weight (text model) nor \
                 {P}attn.query.weight (class / unconditional model) is among its keys"
            )));
        };
        let emb = sd.shape("content_emb.emb.weight")?;
        let logits = sd.shape("to_logits.1.weight")?;
        let (classes, width) = (logits[0], emb[1]);
        if emb[0] != classes + 1 || logits.get(1) != Some(&width) {
            return Err(sd.error(format!(
                "content_emb.emb.weight {emb:?} does not fit to_logits.1.weight {logits:?}: \
                 expected ({} , {width}) rows = classes + mask",
                classes + 1
            )));
        }
        let ffn_key = if family == OriginalFamily::Text {
            format!("{P}mlp.0.weight")
        } else {
            format!("{P}mlp.conv1.weight")
        };
        Ok(Self {
            family,
            width,
            layers: sd.count_indexed("blocks."),
            classes,
            timesteps: sd.dim(&format!("{P}ln1.emb.weight"), 0)?,
            condition_width: match family {
                OriginalFamily::Text => Some(sd.dim(&format!("{P}attn2.key.weight"), 1)?),
                _ => None,
            },
            position_rows: (
                sd.dim("content_emb.height_emb.weight", 0)?,
                sd.dim("content_emb.width_emb.weight", 0)?,
            ),
            ffn_hidden: sd.dim(&ffn_key, 0)?,
        })
    }

    /// The diffusers config of a text-family network with `heads` attention heads.
    pub(crate) fn diffusers_config(
        &self,
        heads: usize,
        sd: &StateDict<'_>,
    ) -> Result<Transformer2DConfig> {
        if self.family != OriginalFamily::Text {
            return Err(sd.error(format!(
                "a {:?} denoiser (key {P}attn.query.weight) cannot be written as a diffusers \
                 Transformer2DModel; only text-conditioned checkpoints convert",
                self.family
            )));
        }
        if heads == 0 || !self.width.is_multiple_of(heads) {
            return Err(sd.error(format!(
                "width {} is not divisible by {heads} attention heads (pass the network's head \
                 count: every released checkpoint uses 16)",
                self.width
            )));
        }
        if self.ffn_hidden != 4 * self.width {
            return Err(sd.error(format!(
                "{P}mlp.0.weight has {} rows; diffusers' feed-forward is 4 × width = {}",
                self.ffn_hidden,
                4 * self.width
            )));
        }
        let (h, w) = self.position_rows;
        if h != w {
            return Err(sd.error(format!(
                "position tables of {h} and {w} rows: diffusers needs a square latent grid"
            )));
        }
        Ok(Transformer2DConfig {
            num_attention_heads: heads,
            attention_head_dim: self.width / heads,
            num_layers: self.layers,
            cross_attention_dim: self.condition_width,
            attention_bias: true,
            sample_size: Some(h),
            num_vector_embeds: Some(self.classes + 1),
            activation_fn: "geglu-approximate".into(),
            num_embeds_ada_norm: Some(self.timesteps),
            ..Transformer2DConfig::default()
        })
    }
}

/// The diffusers name of an original denoiser key: `Some(None)` for a key that is dropped,
/// `None` for a key the importer does not recognise.
pub(crate) fn diffusers_name(key: &str) -> Option<Option<String>> {
    if let Some(rest) = key.strip_prefix("content_emb.") {
        return matches!(
            rest,
            "emb.weight" | "height_emb.weight" | "width_emb.weight"
        )
        .then(|| Some(format!("latent_image_embedding.{rest}")));
    }
    if let Some(rest) = key.strip_prefix("to_logits.") {
        let (part, tail) = rest.split_once('.')?;
        let name = match part {
            "0" => "norm_out",
            "1" => "out",
            _ => return None,
        };
        return matches!(tail, "weight" | "bias").then(|| Some(format!("{name}.{tail}")));
    }
    let rest = key.strip_prefix("blocks.")?;
    let (index, rest) = rest.split_once('.')?;
    index.parse::<usize>().ok()?;
    let (module, tail) = rest.split_once('.')?;
    let block = format!("transformer_blocks.{index}");
    let mapped = match module {
        "ln1" | "ln1_1" => {
            let norm = if module == "ln1" { "norm1" } else { "norm2" };
            matches!(tail, "emb.weight" | "linear.weight" | "linear.bias")
                .then(|| format!("{block}.{norm}.{tail}"))?
        }
        "ln2" => matches!(tail, "weight" | "bias").then(|| format!("{block}.norm3.{tail}"))?,
        "attn1" | "attn2" => {
            if module == "attn2" && tail == "mask" {
                return Some(None);
            }
            let (proj, param) = tail.split_once('.')?;
            let proj = match proj {
                "query" => "to_q",
                "key" => "to_k",
                "value" => "to_v",
                "proj" => "to_out.0",
                _ => return None,
            };
            matches!(param, "weight" | "bias")
                .then(|| format!("{block}.{module}.{proj}.{param}"))?
        }
        "mlp" => {
            let (layer, param) = tail.split_once('.')?;
            let layer = match layer {
                "0" => "ff.net.0.proj",
                "2" => "ff.net.2",
                _ => return None,
            };
            matches!(param, "weight" | "bias").then(|| format!("{block}.{layer}.{param}"))?
        }
        _ => return None,
    };
    Some(Some(mapped))
}

/// Every tensor of the denoiser under its diffusers name; an unrecognised key is an error
/// naming it.
pub(crate) fn diffusers_tensors(sd: &StateDict<'_>) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for key in sd.keys() {
        match diffusers_name(key) {
            Some(Some(name)) => out.push((name, sd.tensor(key)?)),
            Some(None) => {}
            None => {
                return Err(sd.error(format!("unrecognised denoiser key {}", sd.stored_name(key))));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::diffusers_name;

    #[test]
    fn every_original_denoiser_name_maps_to_its_diffusers_name() {
        let cases = [
            (
                "content_emb.emb.weight",
                "latent_image_embedding.emb.weight",
            ),
            (
                "blocks.3.ln1.emb.weight",
                "transformer_blocks.3.norm1.emb.weight",
            ),
            (
                "blocks.3.ln1_1.linear.bias",
                "transformer_blocks.3.norm2.linear.bias",
            ),
            ("blocks.3.ln2.weight", "transformer_blocks.3.norm3.weight"),
            (
                "blocks.0.attn1.query.weight",
                "transformer_blocks.0.attn1.to_q.weight",
            ),
            (
                "blocks.0.attn2.proj.bias",
                "transformer_blocks.0.attn2.to_out.0.bias",
            ),
            (
                "blocks.1.mlp.0.weight",
                "transformer_blocks.1.ff.net.0.proj.weight",
            ),
            ("blocks.1.mlp.2.bias", "transformer_blocks.1.ff.net.2.bias"),
            ("to_logits.0.weight", "norm_out.weight"),
            ("to_logits.1.bias", "out.bias"),
        ];
        for (original, diffusers) in cases {
            assert_eq!(diffusers_name(original), Some(Some(diffusers.to_string())));
        }
        assert_eq!(diffusers_name("blocks.0.attn2.mask"), Some(None));
        for unknown in [
            "blocks.x.ln1.emb.weight",
            "blocks.0.attn.query.weight",
            "blocks.0.mlp.1.weight",
            "to_logits.2.weight",
            "content_emb.pos",
        ] {
            assert_eq!(diffusers_name(unknown), None, "{unknown}");
        }
    }
}
