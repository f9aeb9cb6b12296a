//! VQ-GANs in the key grammar of taming-transformers (Esser et al. 2021), which every VQ-VAE of
//! the original release uses — the taming f8 Gumbel OpenImages model of the CC / COCO / CUB /
//! LAION-human checkpoints, the f16 ImageNet and FFHQ models, and ITHQ's PatchVQGAN — renamed
//! to diffusers' `VQModel` (docs/original-checkpoints.md §"The VQ-VAEs").
//!
//! Encoder `down.{l}.block.{j}` / `.attn.{j}` / `.downsample.conv` → `down_blocks.{l}.resnets.{j}`
//! / `.attentions.{j}` / `.downsamplers.0.conv`; the decoder stores `up` **by resolution level**,
//! so `up.{l}` becomes `up_blocks.{L−1−l}`; `mid.block_1` / `attn_1` / `block_2` →
//! `mid_block.resnets.0` / `attentions.0` / `resnets.1`; `norm_out` → `conv_norm_out`;
//! `nin_shortcut` → `conv_shortcut`. Attention projections are 1×1 convolutions in taming
//! (`q`, `k`, `v`, `proj_out`, weights (C, C, 1, 1)) and Linears in diffusers
//! (`to_q`, `to_k`, `to_v`, `to_out.0`, (C, C)); `norm` → `group_norm`.
//!
//! The codebook is `quantize.embed.weight` (Gumbel), `quantize.embedding.weight` (taming's
//! VectorQuantizer) or the buffer `quantize.embedding` (ITHQ's EMA quantizer); the Gumbel
//! `quantize.proj` (only used to encode) and the EMA statistics are dropped. GroupNorm's group
//! count is not stored (32 in taming).

use candle_core::Tensor;
use vq_codebook::{DownBlockType, UpBlockType, VqModelConfig};

use super::state_dict::StateDict;
use crate::Result;

/// The quantizer a VQ-GAN file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalQuantizer {
    /// taming's `GumbelQuantize` (`quantize.embed.weight`, `quantize.proj`): the f8 OpenImages
    /// model. Its encoder picks codes by the argmax of `quantize.proj`; the converted model
    /// encodes by the nearest codebook row instead.
    Gumbel,
    /// taming's `VectorQuantizer2` (`quantize.embedding.weight`): the f16 ImageNet / FFHQ models.
    Nearest,
    /// ITHQ's EMA quantizer (the buffer `quantize.embedding`).
    Ema,
}

/// Where a taming VQ-GAN's tensors are and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalVqGan {
    /// Quantizer kind.
    pub quantizer: OriginalQuantizer,
    /// Codebook rows in the file (before any code remap).
    pub codebook_rows: usize,
    /// Codebook vector width.
    pub embed_dim: usize,
    /// Resolution levels.
    pub levels: usize,
}

impl OriginalQuantizer {
    /// The key of its codebook.
    pub(crate) fn codebook_key(self) -> &'static str {
        match self {
            OriginalQuantizer::Gumbel => "quantize.embed.weight",
            OriginalQuantizer::Nearest => "quantize.embedding.weight",
            OriginalQuantizer::Ema => "quantize.embedding",
        }
    }
}

impl OriginalVqGan {
    /// Inspects `sd` (a VQ-GAN state dict in taming names).
    pub(crate) fn infer(sd: &StateDict<'_>) -> Result<Self> {
        let quantizer = if sd.contains("quantize.embed.weight") {
            OriginalQuantizer::Gumbel
        } else if sd.contains("quantize.embedding.weight") {
            OriginalQuantizer::Nearest
        } else if sd.contains("quantize.embedding") {
            OriginalQuantizer::Ema
        } else {
            return Err(sd.error(
                "no VQ-GAN codebook: none of quantize.embed.weight (Gumbel), \
                 quantize.embedding.weight (VectorQuantizer) or quantize.embedding (EMA) is \
                 among its keys",
            ));
        };
        let codebook = sd.shape(quantizer.codebook_key())?;
        if codebook.len() != 2 {
            return Err(sd.error(format!(
                "{}: shape {codebook:?} is not (codes, width)",
                sd.stored_name(quantizer.codebook_key())
            )));
        }
        Ok(Self {
            quantizer,
            codebook_rows: codebook[0],
            embed_dim: codebook[1],
            levels: sd.count_indexed("encoder.down."),
        })
    }

    /// The diffusers config for a codebook of `codes` rows (after any remap), GroupNorm with
    /// `norm_groups` groups, and latent grid side `grid` (for the nominal `sample_size`).
    pub(crate) fn diffusers_config(
        &self,
        sd: &StateDict<'_>,
        codes: usize,
        norm_groups: usize,
        grid: usize,
    ) -> Result<VqModelConfig> {
        let levels = self.levels;
        if levels == 0 {
            return Err(sd.error("no encoder.down.0 blocks: not a taming VQ-GAN"));
        }
        let mut channels = Vec::with_capacity(levels);
        let mut down = Vec::with_capacity(levels);
        let mut up = Vec::with_capacity(levels);
        for l in 0..levels {
            channels.push(sd.dim(&format!("encoder.down.{l}.block.0.conv2.weight"), 0)?);
            down.push(
                if sd.contains(&format!("encoder.down.{l}.attn.0.q.weight")) {
                    DownBlockType::AttnDownEncoderBlock2D
                } else {
                    DownBlockType::DownEncoderBlock2D
                },
            );
            let level = levels - 1 - l;
            up.push(
                if sd.contains(&format!("decoder.up.{level}.attn.0.q.weight")) {
                    UpBlockType::AttnUpDecoderBlock2D
                } else {
                    UpBlockType::UpDecoderBlock2D
                },
            );
        }
        let config = VqModelConfig {
            in_channels: sd.dim("encoder.conv_in.weight", 1)?,
            out_channels: sd.dim("decoder.conv_out.weight", 0)?,
            down_block_types: down,
            up_block_types: up,
            block_out_channels: channels,
            layers_per_block: sd.count_indexed("encoder.down.0.block."),
            latent_channels: sd.dim("encoder.conv_out.weight", 0)?,
            sample_size: grid << (levels - 1),
            num_vq_embeddings: codes,
            norm_num_groups: norm_groups,
            vq_embed_dim: Some(sd.dim("quant_conv.weight", 0)?),
            mid_block_add_attention: sd.contains("encoder.mid.attn_1.q.weight"),
            ..VqModelConfig::default()
        };
        if let Some(c) = config
            .block_out_channels
            .iter()
            .find(|&&c| norm_groups == 0 || c % norm_groups != 0)
        {
            return Err(sd.error(format!(
                "{c} channels do not split into {norm_groups} GroupNorm groups (taming uses 32; \
                 pass the model's group count)"
            )));
        }
        config.validate().map_err(|e| sd.error(e.to_string()))?;
        Ok(config)
    }
}

/// `(diffusers name, squeeze a 1×1 convolution to a Linear)`, `Some(None)` for a dropped key,
/// `None` for an unrecognised one.
pub(crate) fn diffusers_name(key: &str, levels: usize) -> Option<Option<(String, bool)>> {
    fn resnet_part(rest: &str) -> Option<String> {
        let (module, param) = rest.split_once('.')?;
        let module = match module {
            "norm1" | "conv1" | "norm2" | "conv2" => module,
            "nin_shortcut" => "conv_shortcut",
            _ => return None,
        };
        matches!(param, "weight" | "bias").then(|| format!("{module}.{param}"))
    }
    fn attention_part(rest: &str) -> Option<(String, bool)> {
        let (module, param) = rest.split_once('.')?;
        let (name, linear) = match module {
            "norm" => ("group_norm", false),
            "q" => ("to_q", true),
            "k" => ("to_k", true),
            "v" => ("to_v", true),
            "proj_out" => ("to_out.0", true),
            _ => return None,
        };
        matches!(param, "weight" | "bias")
            .then(|| (format!("{name}.{param}"), linear && param == "weight"))
    }
    fn conv(rest: &str) -> bool {
        matches!(rest, "weight" | "bias")
    }

    match key {
        "quantize.embed.weight" | "quantize.embedding.weight" | "quantize.embedding" => {
            return Some(Some(("quantize.embedding.weight".into(), false)));
        }
        "quantize.proj.weight"
        | "quantize.proj.bias"
        | "quantize.cluster_size"
        | "quantize.embedding_avg" => return Some(None),
        _ => {}
    }
    let (top, rest) = key.split_once('.')?;
    match top {
        "quant_conv" | "post_quant_conv" => {
            return conv(rest).then(|| Some((key.to_string(), false)));
        }
        "encoder" | "decoder" => {}
        _ => return None,
    }
    let (part, rest) = rest.split_once('.')?;
    let mapped = match part {
        "conv_in" | "conv_out" => conv(rest).then(|| (format!("{top}.{part}.{rest}"), false))?,
        "norm_out" => conv(rest).then(|| (format!("{top}.conv_norm_out.{rest}"), false))?,
        "mid" => {
            let (module, rest) = rest.split_once('.')?;
            match module {
                "block_1" => (
                    format!("{top}.mid_block.resnets.0.{}", resnet_part(rest)?),
                    false,
                ),
                "block_2" => (
                    format!("{top}.mid_block.resnets.1.{}", resnet_part(rest)?),
                    false,
                ),
                "attn_1" => {
                    let (name, linear) = attention_part(rest)?;
                    (format!("{top}.mid_block.attentions.0.{name}"), linear)
                }
                _ => return None,
            }
        }
        "down" | "up" if (part == "down") == (top == "encoder") => {
            let (level, rest) = rest.split_once('.')?;
            let level: usize = level.parse().ok()?;
            if level >= levels {
                return None;
            }
            let (blocks, index) = if top == "encoder" {
                ("down_blocks", level)
            } else {
                ("up_blocks", levels - 1 - level)
            };
            let (module, rest) = rest.split_once('.')?;
            let prefix = format!("{top}.{blocks}.{index}");
            match module {
                "block" => {
                    let (j, rest) = rest.split_once('.')?;
                    j.parse::<usize>().ok()?;
                    (
                        format!("{prefix}.resnets.{j}.{}", resnet_part(rest)?),
                        false,
                    )
                }
                "attn" => {
                    let (j, rest) = rest.split_once('.')?;
                    j.parse::<usize>().ok()?;
                    let (name, linear) = attention_part(rest)?;
                    (format!("{prefix}.attentions.{j}.{name}"), linear)
                }
                "downsample" | "upsample" if (module == "downsample") == (top == "encoder") => {
                    let sampler = if top == "encoder" {
                        "downsamplers"
                    } else {
                        "upsamplers"
                    };
                    let param = rest.strip_prefix("conv.")?;
                    conv(param).then(|| (format!("{prefix}.{sampler}.0.conv.{param}"), false))?
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Some(mapped))
}

/// Every tensor of the VQ-GAN under its diffusers name except the codebook (which the caller
/// remaps); an unrecognised key is an error naming it.
pub(crate) fn diffusers_tensors(
    sd: &StateDict<'_>,
    levels: usize,
) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for key in sd.keys() {
        match diffusers_name(key, levels) {
            Some(Some((name, _))) if name == "quantize.embedding.weight" => {}
            Some(Some((name, linear))) => {
                let t = sd.tensor(key)?;
                let t = if linear {
                    let dims = t.dims().to_vec();
                    if dims.len() != 4 || dims[2] != 1 || dims[3] != 1 {
                        return Err(sd.error(format!(
                            "{}: shape {dims:?} is not a 1×1 convolution",
                            sd.stored_name(key)
                        )));
                    }
                    t.reshape((dims[0], dims[1]))?
                } else {
                    t
                };
                out.push((name, t));
            }
            Some(None) => {}
            None => {
                return Err(sd.error(format!("unrecognised VQ-GAN key {}", sd.stored_name(key))));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::diffusers_name;

    #[test]
    fn taming_names_map_to_diffusers_names_with_the_decoder_levels_reversed() {
        let n = |k: &str| diffusers_name(k, 4).flatten();
        let s = |name: &str, linear| Some((name.to_string(), linear));
        assert_eq!(
            n("encoder.down.2.block.1.nin_shortcut.weight"),
            s(
                "encoder.down_blocks.2.resnets.1.conv_shortcut.weight",
                false
            )
        );
        assert_eq!(
            n("encoder.down.3.attn.0.q.weight"),
            s("encoder.down_blocks.3.attentions.0.to_q.weight", true)
        );
        assert_eq!(
            n("encoder.down.3.attn.0.q.bias"),
            s("encoder.down_blocks.3.attentions.0.to_q.bias", false)
        );
        assert_eq!(
            n("encoder.down.0.downsample.conv.weight"),
            s("encoder.down_blocks.0.downsamplers.0.conv.weight", false)
        );
        assert_eq!(
            n("decoder.up.3.block.2.conv1.weight"),
            s("decoder.up_blocks.0.resnets.2.conv1.weight", false)
        );
        assert_eq!(
            n("decoder.up.0.block.0.norm1.bias"),
            s("decoder.up_blocks.3.resnets.0.norm1.bias", false)
        );
        assert_eq!(
            n("decoder.up.1.upsample.conv.bias"),
            s("decoder.up_blocks.2.upsamplers.0.conv.bias", false)
        );
        assert_eq!(
            n("decoder.mid.attn_1.proj_out.weight"),
            s("decoder.mid_block.attentions.0.to_out.0.weight", true)
        );
        assert_eq!(
            n("encoder.mid.block_2.conv2.bias"),
            s("encoder.mid_block.resnets.1.conv2.bias", false)
        );
        assert_eq!(
            n("encoder.norm_out.weight"),
            s("encoder.conv_norm_out.weight", false)
        );
        assert_eq!(
            n("quantize.embed.weight"),
            s("quantize.embedding.weight", false)
        );
        assert_eq!(diffusers_name("quantize.proj.weight", 4), Some(None));
        for unknown in [
            "encoder.up.0.block.0.conv1.weight",
            "decoder.up.4.block.0.conv1.weight",
            "decoder.up.1.downsample.conv.weight",
            "loss.logvar",
            "encoder.mid.attn_2.q.weight",
        ] {
            assert_eq!(diffusers_name(unknown, 4), None, "{unknown}");
        }
    }
}
