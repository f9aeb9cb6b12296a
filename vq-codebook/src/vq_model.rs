//! diffusers' `VQModel` (`diffusers/models/autoencoders/vq_model.py`), docs/reference-behaviour.md §4:
//! `encoder → quant_conv (1×1) → quantize` on the way in, `quantize.embedding lookup →
//! post_quant_conv (1×1) → decoder` on the way out. The token path of the VQ-Diffusion pipeline
//! is `decode(codebook_entry(ids), force_not_quantize=True)` = [`VqModel::decode_tokens`].
//!
//! Weights load from a diffusers folder (`config.json` + `diffusion_pytorch_model.{safetensors,bin}`,
//! also a pipeline root with a `vqvae/` subfolder), or a single safetensors (memory-mapped) /
//! PyTorch `.bin` file with keys exactly as diffusers names them; f32, f16 and bf16 files are
//! converted to f32 on load (all compute is f32).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vq_nn::Conv2d;

use crate::config::VqModelConfig;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::vector_quantizer::{Quantised, VectorQuantizer};
use crate::weights::conv2d;

/// The VQ-VAE: encoder, quantiser and decoder.
#[derive(Debug, Clone)]
pub struct VqModel {
    config: VqModelConfig,
    encoder: Encoder,
    quant_conv: Conv2d,
    quantize: VectorQuantizer,
    post_quant_conv: Conv2d,
    decoder: Decoder,
}

/// What one training forward pass produces ([`VqModel::forward_train`]).
#[derive(Debug, Clone)]
pub struct TrainForward {
    /// The reconstruction `(B, out_channels, H, W)`.
    pub reconstruction: Tensor,
    /// The encoder output after `quant_conv`, before quantisation `(B, D, h, w)`.
    pub latents: Tensor,
    /// Quantiser output (straight-through latents, indices, loss terms).
    pub quantised: Quantised,
}

impl VqModel {
    /// Builds the model from `vb` (root of the state dict, or a training `VarMap`).
    pub fn new(vb: VarBuilder, config: &VqModelConfig) -> Result<Self> {
        config.validate()?;
        let embed_dim = config.embed_dim();
        Ok(Self {
            config: config.clone(),
            encoder: Encoder::new(vb.pp("encoder"), config)?,
            quant_conv: conv2d(
                &vb.pp("quant_conv"),
                config.latent_channels,
                embed_dim,
                1,
                1,
                0,
            )?,
            quantize: VectorQuantizer::new(vb.pp("quantize"), config.num_vq_embeddings, embed_dim)?,
            post_quant_conv: conv2d(
                &vb.pp("post_quant_conv"),
                embed_dim,
                config.latent_channels,
                1,
                1,
                0,
            )?,
            decoder: Decoder::new(vb.pp("decoder"), config)?,
        })
    }

    /// Loads a diffusers model folder (`config.json` + weights), or a pipeline folder whose
    /// `vqvae/` subfolder is one. Weights are stored as `dtype` and computed in
    /// [`vq_nn::compute_dtype`] (f32 on the CPU).
    pub fn from_pretrained(dir: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Self> {
        let dir = vq_nn::component_folder(dir.as_ref(), "vqvae", "config.json");
        let config = VqModelConfig::from_file(dir.join("config.json"))?;
        let names = vq_nn::WeightNames::DIFFUSERS;
        let weights = match names.find(&dir, vq_nn::Variant::Default) {
            Ok(w) => w,
            Err(_) => names.find(&dir, vq_nn::Variant::Fp16).map_err(|_| {
                vq_nn::Error::MissingWeightFile {
                    folder: dir.clone(),
                    looked_for: [vq_nn::Variant::Default, vq_nn::Variant::Fp16]
                        .into_iter()
                        .flat_map(|v| names.candidates(v))
                        .collect(),
                }
            })?,
        };
        Self::from_weights(&config, weights, dtype, device)
    }

    /// Loads a single weight file: `.safetensors` or a PyTorch checkpoint (`.bin`, `.pt`,
    /// `.pth`, `.ckpt`), any float dtype, memory-mapped. Strict: every key the config implies
    /// must be present with its shape, and every tensor of the file must be used, except the
    /// `training.*` state of this crate's own training checkpoints ([`crate::Trainer`]).
    pub fn from_weights(
        config: &VqModelConfig,
        weights: impl AsRef<Path>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let source = vq_nn::WeightSource::open(weights)?;
        let model = Self::new(
            source.var_builder(vq_nn::compute_dtype(dtype, device), device),
            config,
        )?;
        source.ensure_all_used(|key| key.starts_with("training."))?;
        Ok(model)
    }

    /// The configuration.
    pub fn config(&self) -> &VqModelConfig {
        &self.config
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The quantiser (codebook).
    pub fn quantiser(&self) -> &VectorQuantizer {
        &self.quantize
    }

    /// Checks `images` is `(B, in_channels, H, W)` with `H`, `W` multiples of the downsampling factor.
    pub fn check_images(&self, images: &Tensor) -> Result<()> {
        let (_, c, h, w) = images.dims4().map_err(|_| Error::Shape {
            what: "images",
            expected: format!("(B, {}, H, W)", self.config.in_channels),
            found: images.dims().to_vec(),
        })?;
        if c != self.config.in_channels {
            return Err(Error::Channels {
                what: "images",
                expected: self.config.in_channels,
                found: c,
                shape: images.dims().to_vec(),
            });
        }
        let factor = self.config.downsampling_factor();
        if h == 0 || w == 0 || !h.is_multiple_of(factor) || !w.is_multiple_of(factor) {
            return Err(Error::ImageSize {
                height: h,
                width: w,
                factor,
            });
        }
        Ok(())
    }

    /// diffusers' `VQModel.encode`: `quant_conv(encoder(images))`, images in `[-1, 1]`
    /// `(B, in_channels, H, W)` → latents `(B, D, H/f, W/f)` (not yet quantised).
    pub fn encode_latents(&self, images: &Tensor) -> Result<Tensor> {
        self.check_images(images)?;
        let x = images.to_dtype(DType::F32)?;
        Ok(x.apply(&self.encoder)?.apply(&self.quant_conv)?)
    }

    /// Images in `[-1, 1]` → token grid `(B, H/f, W/f)` u32 (nearest codebook entries of the
    /// encoder latents, as `quantize(encode(x))` in diffusers).
    pub fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let latents = self.encode_latents(images)?;
        self.quantize.nearest_indices(&latents)
    }

    /// `quantize.get_codebook_entry`: token grid `(B, h, w)` → code vectors `(B, D, h, w)`.
    pub fn codebook_entry(&self, tokens: &Tensor) -> Result<Tensor> {
        self.quantize.codebook_entry(tokens)
    }

    /// `VQModel.decode(quant, force_not_quantize=True)`: `decoder(post_quant_conv(quant))`,
    /// `(B, D, h, w)` → images `(B, out_channels, h·f, w·f)` (roughly in `[-1, 1]`, unclamped).
    pub fn decode_latents(&self, quant: &Tensor) -> Result<Tensor> {
        let (_, c, _, _) = quant.dims4().map_err(|_| Error::Shape {
            what: "quantised latents",
            expected: format!("(B, {}, h, w)", self.config.embed_dim()),
            found: quant.dims().to_vec(),
        })?;
        if c != self.config.embed_dim() {
            return Err(Error::Channels {
                what: "quantised latents",
                expected: self.config.embed_dim(),
                found: c,
                shape: quant.dims().to_vec(),
            });
        }
        Ok(quant
            .to_dtype(DType::F32)?
            .apply(&self.post_quant_conv)?
            .apply(&self.decoder)?)
    }

    /// `VQModel.decode(h)` without `force_not_quantize`: re-quantises `h` to its nearest codes
    /// first, then decodes.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let quantised = self.quantize.quantise(latents)?;
        self.decode_latents(&quantised.z_q)
    }

    /// The pipeline's decode: token grid `(B, h, w)` → codebook lookup → `post_quant_conv` →
    /// decoder → images `(B, out_channels, h·f, w·f)`.
    pub fn decode_tokens(&self, tokens: &Tensor) -> Result<Tensor> {
        let quant = self.codebook_entry(tokens)?;
        self.decode_latents(&quant)
    }

    /// A training forward pass: encode, quantise with the straight-through estimator, decode.
    pub fn forward_train(&self, images: &Tensor) -> Result<TrainForward> {
        let latents = self.encode_latents(images)?;
        let quantised = self.quantize.quantise(&latents)?;
        let reconstruction = self.decode_latents(&quantised.z_q)?;
        Ok(TrainForward {
            reconstruction,
            latents,
            quantised,
        })
    }
}
