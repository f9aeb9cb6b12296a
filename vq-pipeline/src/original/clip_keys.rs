//! The CLIP text tower stored inside an original text checkpoint (`transformer.condition_emb.`:
//! OpenAI's ViT-B/32 text half in OpenAI's own layout, Radford et al. 2021) renamed to
//! transformers' `CLIPTextModel` (docs/original-checkpoints.md §"The text encoder").
//!
//! OpenAI fuses the attention input projections: `attn.in_proj_weight` (3·W, W) holds the query,
//! key and value rows in that order, and `attn.in_proj_bias` likewise; they split into
//! `q_proj` / `k_proj` / `v_proj` with no rescaling (both scale the query after projecting).
//! The position table is a bare parameter (`positional_embedding`, no `.weight`). OpenAI does not
//! store the head count (its rule is width / 64); `text_projection` is not used by VQ-Diffusion
//! (it reads the normalised token states) and is dropped.

use candle_core::Tensor;
use clip_text::{Activation, ClipTextConfig};

use super::state_dict::StateDict;
use crate::Result;

const HF: &str = "text_model.";

/// Where an OpenAI key goes.
enum Target {
    Rename(String),
    /// `in_proj_*` of layer `n`, `param` = `weight` | `bias`.
    SplitQkv {
        layer: usize,
        param: &'static str,
    },
    Drop,
}

fn target(key: &str) -> Option<Target> {
    let simple = match key {
        "token_embedding.weight" => Some("embeddings.token_embedding.weight"),
        "positional_embedding" => Some("embeddings.position_embedding.weight"),
        "ln_final.weight" => Some("final_layer_norm.weight"),
        "ln_final.bias" => Some("final_layer_norm.bias"),
        "text_projection" => return Some(Target::Drop),
        _ => None,
    };
    if let Some(s) = simple {
        return Some(Target::Rename(format!("{HF}{s}")));
    }
    let rest = key.strip_prefix("transformer.resblocks.")?;
    let (index, rest) = rest.split_once('.')?;
    let layer: usize = index.parse().ok()?;
    let mapped = match rest {
        "attn.in_proj_weight" => {
            return Some(Target::SplitQkv {
                layer,
                param: "weight",
            });
        }
        "attn.in_proj_bias" => {
            return Some(Target::SplitQkv {
                layer,
                param: "bias",
            });
        }
        "attn.out_proj.weight" => "self_attn.out_proj.weight",
        "attn.out_proj.bias" => "self_attn.out_proj.bias",
        "ln_1.weight" => "layer_norm1.weight",
        "ln_1.bias" => "layer_norm1.bias",
        "ln_2.weight" => "layer_norm2.weight",
        "ln_2.bias" => "layer_norm2.bias",
        "mlp.c_fc.weight" => "mlp.fc1.weight",
        "mlp.c_fc.bias" => "mlp.fc1.bias",
        "mlp.c_proj.weight" => "mlp.fc2.weight",
        "mlp.c_proj.bias" => "mlp.fc2.bias",
        _ => return None,
    };
    Some(Target::Rename(format!(
        "{HF}encoder.layers.{layer}.{mapped}"
    )))
}

/// The text tower's hyper-parameters from its shapes; `heads` overrides OpenAI's width / 64.
pub(crate) fn text_config(sd: &StateDict<'_>, heads: Option<usize>) -> Result<ClipTextConfig> {
    let token = sd.shape("token_embedding.weight")?;
    let hidden = token[1];
    let heads = match heads {
        Some(h) => h,
        None if hidden % 64 == 0 => hidden / 64,
        None => {
            return Err(sd.error(format!(
                "text width {hidden} is not a multiple of 64, so OpenAI's head rule (width / 64) \
                 does not apply: pass the text encoder's head count"
            )));
        }
    };
    if heads == 0 || hidden % heads != 0 {
        return Err(sd.error(format!(
            "text width {hidden} is not divisible by {heads} heads"
        )));
    }
    Ok(ClipTextConfig {
        vocab_size: token[0],
        hidden_size: hidden,
        intermediate_size: sd.dim("transformer.resblocks.0.mlp.c_fc.weight", 0)?,
        num_hidden_layers: sd.count_indexed("transformer.resblocks."),
        num_attention_heads: heads,
        max_position_embeddings: sd.dim("positional_embedding", 0)?,
        hidden_act: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
        initializer_factor: 1.0,
    })
}

/// Every tensor of the tower under its transformers name.
pub(crate) fn hf_tensors(sd: &StateDict<'_>) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for key in sd.keys() {
        match target(key) {
            Some(Target::Rename(name)) => out.push((name, sd.tensor(key)?)),
            Some(Target::SplitQkv { layer, param }) => {
                let fused = sd.tensor(key)?;
                let rows = fused.dim(0)?;
                if rows % 3 != 0 {
                    return Err(sd.error(format!(
                        "{}: {rows} rows, not three equal projections",
                        sd.stored_name(key)
                    )));
                }
                for (i, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                    out.push((
                        format!("{HF}encoder.layers.{layer}.self_attn.{proj}.{param}"),
                        fused.narrow(0, i * rows / 3, rows / 3)?.contiguous()?,
                    ));
                }
            }
            Some(Target::Drop) => {}
            None => {
                return Err(sd.error(format!(
                    "unrecognised text-encoder key {}",
                    sd.stored_name(key)
                )));
            }
        }
    }
    Ok(out)
}
