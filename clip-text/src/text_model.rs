//! The CLIP text transformer, transformers' `CLIPTextModel` / `CLIPTextTransformer`:
//! `final_layer_norm(encoder(embeddings(ids), causal_mask))` = `last_hidden_state`, the output the
//! VQ-Diffusion pipeline consumes (docs/reference-behaviour.md §1.3). The pooled output and the
//! text projection are not computed.
//!
//! Built from a `VarBuilder`: a checkpoint (frozen, fused inference kernels) or a
//! `candle_nn::VarMap` (trainable: every op on that path has a backward).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vq_nn::LayerNorm;

use crate::attention::causal_mask;
use crate::config::ClipTextConfig;
use crate::embeddings::ClipTextEmbeddings;
use crate::encoder_layer::ClipEncoderLayer;
use crate::error::{Error, Result};
use crate::normalise::l2_normalise_tokens;
use crate::weights::{ignorable, weight_source};

/// The CLIP text tower (`text_model.*` keys).
#[derive(Debug, Clone)]
pub struct ClipTextModel {
    embeddings: ClipTextEmbeddings,
    layers: Vec<ClipEncoderLayer>,
    final_layer_norm: LayerNorm,
    config: ClipTextConfig,
    dtype: DType,
    device: Device,
}

impl ClipTextModel {
    /// Builds the model from `vb` at the checkpoint root (this adds the `text_model` prefix).
    /// With `VarBuilder::from_varmap` the parameters are created with transformers' init and
    /// are trainable.
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        config.validate()?;
        let dtype = vb.dtype();
        let device = vb.device().clone();
        let vb = vb.pp("text_model");
        let embeddings = ClipTextEmbeddings::new(vb.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| ClipEncoderLayer::new(vb.pp(format!("encoder.layers.{i}")), config))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = LayerNorm::new(
            vb.pp("final_layer_norm"),
            config.hidden_size,
            config.layer_norm_eps,
            true,
        )?;
        Ok(Self {
            embeddings,
            layers,
            final_layer_norm,
            config: config.clone(),
            dtype,
            device,
        })
    }

    /// Loads a `text_encoder/` folder (or a pipeline root holding one): `config.json` plus
    /// `model.safetensors` or `pytorch_model.bin` (f32, f16 or bf16 on disk), stored as `dtype`
    /// and computed in [`vq_nn::compute_dtype`] (f32 on the CPU).
    pub fn from_pretrained(
        folder: impl AsRef<Path>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let folder = vq_nn::component_folder(folder.as_ref(), "text_encoder", "config.json");
        let config = ClipTextConfig::from_pretrained(&folder)?;
        let weights = vq_nn::WeightNames::TRANSFORMERS.find(&folder, vq_nn::Variant::Default)?;
        Self::from_weights(&config, weights, dtype, device)
    }

    /// Loads the weights of one checkpoint file for `config`. Strict: a missing, mis-shaped or
    /// non-float weight and any unused `text_model.*` tensor are errors naming the key.
    pub fn from_weights(
        config: &ClipTextConfig,
        weights: impl AsRef<Path>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let source = weight_source(weights.as_ref())?;
        let model = Self::new(
            source.var_builder(vq_nn::compute_dtype(dtype, device), device),
            config,
        )?;
        source.ensure_all_used(ignorable)?;
        Ok(model)
    }

    /// The configuration.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Validates `(batch, seq)` integer ids: rank 2, `seq ≤ max_position_embeddings`, every id in
    /// `0..vocab_size`. Returns the ids as a `u32` tensor on the model's device.
    pub fn check_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2().map_err(|_| {
            Error::InputShape(format!("expected (batch, seq), got {:?}", ids.dims()))
        })?;
        if seq == 0 || seq > self.config.max_position_embeddings {
            return Err(Error::InputShape(format!(
                "sequence length {seq} is not in 1..={}",
                self.config.max_position_embeddings
            )));
        }
        if !ids.dtype().is_int() {
            return Err(Error::InputShape(format!(
                "ids must be integers, got {:?}",
                ids.dtype()
            )));
        }
        let values = ids.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        for (b, row) in values.iter().enumerate() {
            for (position, &id) in row.iter().enumerate() {
                if id < 0 || id as usize >= self.config.vocab_size {
                    return Err(Error::TokenOutOfRange {
                        id,
                        batch: b,
                        position,
                        vocab_size: self.config.vocab_size,
                    });
                }
            }
        }
        let _ = batch;
        Ok(ids.to_dtype(DType::U32)?.to_device(&self.device)?)
    }

    /// `last_hidden_state` `(batch, seq, d)` for `(batch, seq)` ids, after the final LayerNorm,
    /// under the causal mask only (no padding mask, as in the pipeline).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let ids = self.check_ids(ids)?;
        let seq = ids.dim(1)?;
        let mask = causal_mask(seq, &self.device)?;
        let mut hidden = self.embeddings.forward(&ids)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &mask)?;
        }
        Ok(self.final_layer_norm.forward_t(&hidden, false)?)
    }

    /// `forward` followed by the per-token L2 normalisation of the pipeline
    /// ([`l2_normalise_tokens`]).
    pub fn encode_normalised(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(l2_normalise_tokens(&self.forward(ids)?)?)
    }
}
