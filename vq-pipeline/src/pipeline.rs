//! [`VqDiffusionPipeline`]: diffusers' `VQDiffusionPipeline` (docs/reference-behaviour.md §1) on the project's
//! crates — CLIP text encoding with per-token L2 normalisation, the learned or empty-prompt null
//! condition, the transformer with cached cross-attention and batched guidance, any sampler of
//! `discrete-diffusion`, and VQ-VAE decoding with diffusers' rounding.
//!
//! Loading validates the whole folder before any weight is read: every component present, and
//! configs consistent (scheduler classes = transformer `num_vector_embeds`, text width = cross-
//! attention width, codebook size = classes − 1, chain length ≤ AdaLN table, null embedding =
//! text shape), with every problem reported in one error. (The latent grid is the transformer's
//! `sample_size`; the VQ-VAE's own `sample_size` is unused by diffusers — 32 for ITHQ's 256-pixel
//! images — so it is not compared.)

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use clip_text::{ClipTextConfig, ClipTextModel, ClipTokenizer, l2_normalise_tokens};
use discrete_diffusion::{
    KnownTokens, MaskAndReplace, NoiseSource, Parameterisation, StepEvent, Transition,
    VqDiffusionSchedule, WithParameterisation, initial_state, sample_with_known,
};
use image::RgbImage;
use serde::Serialize;
use vq_codebook::{VqModel, VqModelConfig};
use vq_transformer::{Guided, Transformer2DConfig, Transformer2DModel};

use vq_nn::Variant;

use crate::edit::EditRecord;
use crate::error::component;
use crate::model_files::ModelFiles;
use crate::null_embedding::load_null_embedding;
use crate::options::NullCondition;
use crate::{Error, GenerationDefaults, GenerationOptions, Result};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The device the model runs on (`vq_nn::parse_device("cuda:0")`, ...).
    pub device: Device,
    /// Storage dtype of the weights (activations are f32 on the CPU, see
    /// [`vq_nn::compute_dtype`]).
    pub dtype: DType,
    /// Weight-file variant.
    pub variant: Variant,
    /// Compute the text cross-attention keys/values once per generation (on by default; off
    /// recomputes them every step, as diffusers does).
    pub cache_cross_attention: bool,
    /// How to read the transformer's output. Every diffusers model predicts x₀ (the default);
    /// `Direct` is for research models trained to predict the reverse step itself
    /// (`discrete_diffusion::Parameterisation`), which sample with the full chain only.
    pub parameterisation: Parameterisation,
    /// Quantise the transformer's attention and feed-forward projections to 8 bits per output
    /// channel, activations per token, while loading ([`Transformer2DModel::from_weights_int8`]:
    /// they are then held in a quarter of their f32 bytes; CPU only, an error on another
    /// device). On CPUs with AVX-512-VNNI they multiply as integers; elsewhere
    /// the same quantised values multiply in f32. Off by default.
    pub int8_transformer: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            variant: Variant::Default,
            cache_cross_attention: true,
            parameterisation: Parameterisation::X0,
            int8_transformer: false,
        }
    }
}

/// Wall time of the three stages of a generation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Tokenisation and text encoding.
    pub text: Duration,
    /// The denoising loop.
    pub denoise: Duration,
    /// VQ-VAE decoding.
    pub decode: Duration,
}

/// The result of [`VqDiffusionPipeline::generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// One image per (prompt, repeat), prompt-major.
    pub images: Vec<RgbImage>,
    /// Decoded images before 8-bit conversion, `(B, 3, H, W)` in `[-1, 1]`.
    pub decoded: Tensor,
    /// Final tokens `(B, N)`.
    pub tokens: Tensor,
    /// The prompt of each image.
    pub image_prompts: Vec<String>,
    /// Warnings (e.g. over-long prompts truncated, with the dropped text).
    pub warnings: Vec<String>,
    /// Model calls made.
    pub model_calls: usize,
    /// Stage timings.
    pub timings: Timings,
    /// The seed of the noise source, when it had one.
    pub seed: Option<u64>,
    /// What an edit ([`VqDiffusionPipeline::edit`]) started from; `None` for a generation.
    pub edit: Option<EditRecord>,
}

/// The token-space part of an edit, prepared by `edit.rs`: the batch's data tokens, which are
/// kept, and where the chain starts.
pub(crate) struct TokenEdit {
    /// `(B, N)` data tokens with the kept positions marked.
    pub known: KnownTokens,
    /// The timestep the chain starts at; `None`: no step at all (strength 0, the VQ
    /// reconstruction).
    pub start: Option<usize>,
    /// Whether the regenerated tokens start from `q(x_start | x_0)` (partial noising) rather
    /// than the all-mask prior.
    pub noised_unknown: bool,
    /// `(B, N)` data tokens (returned as they are when there is no step).
    pub tokens: Tensor,
    /// The record for the sidecar.
    pub record: EditRecord,
}

/// A loaded VQ-Diffusion pipeline.
#[derive(Clone)]
pub struct VqDiffusionPipeline {
    files: ModelFiles,
    generation_defaults: GenerationDefaults,
    tokenizer: ClipTokenizer,
    text_encoder: ClipTextModel,
    transformer: Transformer2DModel,
    vqvae: VqModel,
    chain: MaskAndReplace,
    null_embedding: Option<Tensor>,
    options: LoadOptions,
    device: Device,
}

/// The largest `(B, K, N)` log-probability tensor one generation call may need (8 GiB): larger
/// jobs are split with [`GenerationOptions::batches`].
pub const MAX_BATCH_BYTES: u64 = 8 << 30;

/// Reads every config of `files` and lists the inconsistencies.
pub fn check_consistency(files: &ModelFiles) -> Vec<String> {
    let mut problems = Vec::new();
    let schedule = VqDiffusionSchedule::from_file(&files.scheduler_config)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let transformer = Transformer2DConfig::from_file(&files.transformer_config)
        .and_then(|c| c.validate().map(|_| c))
        .map_err(|e| problems.push(format!("transformer/config.json: {e}")))
        .ok();
    let text = ClipTextConfig::from_pretrained(&files.text_encoder_dir)
        .map_err(|e| problems.push(format!("text_encoder: {e}")))
        .ok();
    let vqvae = VqModelConfig::from_file(&files.vqvae_config)
        .and_then(|c| c.validate().map(|_| c))
        .map_err(|e| problems.push(format!("vqvae/config.json: {e}")))
        .ok();
    if let (Some(s), Some(t)) = (&schedule, &transformer) {
        if s.num_vec_classes != t.num_vector_embeds {
            problems.push(format!(
                "scheduler num_vec_classes {:?} ≠ transformer num_vector_embeds {:?}",
                s.num_vec_classes, t.num_vector_embeds
            ));
        }
        if t.num_embeds_ada_norm
            .is_some_and(|n| n < s.num_train_timesteps)
        {
            problems.push(format!(
                "scheduler num_train_timesteps {} exceeds the transformer's {:?} timestep embeddings",
                s.num_train_timesteps, t.num_embeds_ada_norm
            ));
        }
    }
    match (ClipTokenizer::from_pretrained(&files.tokenizer_dir), &text) {
        (Err(e), _) => problems.push(format!("tokenizer: {e}")),
        (Ok(tok), Some(c)) if tok.max_length() != c.max_position_embeddings => {
            problems.push(format!(
                "tokenizer model_max_length {} ≠ text_encoder max_position_embeddings {} (the \
                 text encoder reads prompts of exactly its position count)",
                tok.max_length(),
                c.max_position_embeddings
            ))
        }
        _ => {}
    }
    if let (Some(c), Some(t)) = (&text, &transformer)
        && t.cross_attention_dim != Some(c.hidden_size)
    {
        problems.push(format!(
            "text_encoder hidden_size {} ≠ transformer cross_attention_dim {:?}",
            c.hidden_size, t.cross_attention_dim
        ));
    }
    if let (Some(v), Some(t)) = (&vqvae, &transformer)
        && v.num_vq_embeddings + 1 != t.num_embeds()
    {
        problems.push(format!(
            "vqvae num_vq_embeddings {} ≠ transformer num_vector_embeds {} − 1",
            v.num_vq_embeddings,
            t.num_embeds()
        ));
    }
    if let Some((config, _)) = &files.null_embedding
        && let Ok(text_json) = std::fs::read_to_string(config)
        && let Ok(cfg) = serde_json::from_str::<crate::NullEmbeddingConfig>(&text_json)
        && cfg.learnable
        && let Some(c) = &text
    {
        if cfg.hidden_size != Some(c.hidden_size) {
            problems.push(format!(
                "learned null embedding hidden_size {:?} ≠ text_encoder hidden_size {}",
                cfg.hidden_size, c.hidden_size
            ));
        }
        if cfg.length != Some(c.max_position_embeddings) {
            problems.push(format!(
                "learned null embedding length {:?} ≠ text max_position_embeddings {}",
                cfg.length, c.max_position_embeddings
            ));
        }
    }
    problems
}

impl VqDiffusionPipeline {
    /// Validates and loads the diffusers-layout folder `root` onto `options.device`.
    pub fn from_pretrained(root: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let root = root.as_ref();
        let device = options.device.clone();
        let files = ModelFiles::locate(root, options.variant)?;
        let problems = check_consistency(&files);
        if !problems.is_empty() {
            return Err(Error::InvalidModel {
                folder: root.to_path_buf(),
                problems,
            });
        }
        let schedule = VqDiffusionSchedule::from_file(&files.scheduler_config)?;
        let chain = MaskAndReplace::from_scheduler_config(&schedule)?;
        let tokenizer =
            ClipTokenizer::from_pretrained(&files.tokenizer_dir).map_err(component("tokenizer"))?;
        let text_config = ClipTextConfig::from_pretrained(&files.text_encoder_dir)
            .map_err(component("text_encoder"))?;
        let text_encoder = ClipTextModel::from_weights(
            &text_config,
            &files.text_encoder_weights,
            options.dtype,
            &device,
        )
        .map_err(component("text_encoder"))?;
        let transformer_config = Transformer2DConfig::from_file(&files.transformer_config)
            .map_err(component("transformer"))?;
        let (config, weights) = (&transformer_config, &files.transformer_weights);
        let transformer = if options.int8_transformer {
            Transformer2DModel::from_weights_int8(config, weights, options.dtype, &device)
        } else {
            Transformer2DModel::from_weights(config, weights, options.dtype, &device)
        }
        .map_err(component("transformer"))?;
        let vqvae_config =
            VqModelConfig::from_file(&files.vqvae_config).map_err(component("vqvae"))?;
        let vqvae =
            VqModel::from_weights(&vqvae_config, &files.vqvae_weights, options.dtype, &device)
                .map_err(component("vqvae"))?;
        let null_embedding = match &files.null_embedding {
            Some((config, weights)) => load_null_embedding(config, weights, &device)?.1,
            None => None,
        };
        let generation_defaults = GenerationDefaults::from_pretrained(root)?;
        Ok(Self {
            files,
            generation_defaults,
            tokenizer,
            text_encoder,
            transformer,
            vqvae,
            chain,
            null_embedding,
            options,
            device,
        })
    }

    /// This pipeline with other text encoder, denoiser and null embedding (of the same shapes):
    /// e.g. the models of a training run, to sample from them while they train (they share
    /// their variables, so the samples follow the training).
    pub fn with_models(
        &self,
        text_encoder: ClipTextModel,
        transformer: Transformer2DModel,
        null_embedding: Option<Tensor>,
    ) -> Result<Self> {
        if transformer.config() != self.transformer.config() {
            return Err(Error::InvalidOption(
                "with_models: the denoiser's configuration differs from the loaded one".into(),
            ));
        }
        if let (Some(new), Some(old)) = (&null_embedding, &self.null_embedding)
            && new.dims() != old.dims()
        {
            return Err(Error::InvalidOption(format!(
                "with_models: null embedding {:?}, the model's {:?}",
                new.dims(),
                old.dims()
            )));
        }
        Ok(Self {
            text_encoder,
            transformer,
            null_embedding,
            ..self.clone()
        })
    }

    /// The model's recommended sampling settings (`generation_config.json`; diffusers'
    /// defaults when the folder has none).
    pub fn generation_defaults(&self) -> &GenerationDefaults {
        &self.generation_defaults
    }

    /// Options for `prompts` with the model's recommended settings (see
    /// [`VqDiffusionPipeline::generation_defaults`]) over diffusers' defaults.
    pub fn default_options<S: Into<String>>(
        &self,
        prompts: impl IntoIterator<Item = S>,
    ) -> GenerationOptions {
        self.generation_defaults
            .apply(GenerationOptions::new(prompts))
    }

    /// The located files.
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// The forward chain (mask-and-replace with the scheduler's constants).
    pub fn chain(&self) -> &MaskAndReplace {
        &self.chain
    }

    /// The transformer read with the loaded parameterisation.
    fn denoiser(&self) -> WithParameterisation<'_, Transformer2DModel> {
        WithParameterisation {
            inner: &self.transformer,
            parameterisation: self.options.parameterisation,
        }
    }

    /// The VQ-VAE (e.g. to encode real images into token grids).
    pub fn vqvae(&self) -> &VqModel {
        &self.vqvae
    }

    /// The conditional negative ELBO, in bits per token, of token grids `x0` `(B, N)` given one
    /// prompt per row (no guidance): every `L_t` at its own timestep plus the prior term
    /// (paper eq. 6), with the forward noise drawn from `noise`. The held-out likelihood metric
    /// of the studies.
    pub fn elbo(
        &self,
        prompts: &[String],
        x0: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<discrete_diffusion::ElboReport> {
        let rows = x0.dim(0)?;
        if rows != prompts.len() {
            return Err(Error::InvalidOption(format!(
                "elbo: {} token rows but {} prompts",
                rows,
                prompts.len()
            )));
        }
        let (states, _) = self.encode_text(prompts)?;
        let context = self
            .transformer
            .uncached_context(&states)
            .map_err(component("transformer"))?;
        Ok(discrete_diffusion::elbo_bits_per_token(
            &self.chain,
            &self.denoiser(),
            &context,
            x0,
            noise,
        )?)
    }

    /// The chain's length `T` (the scheduler's `num_train_timesteps`).
    pub fn num_timesteps(&self) -> usize {
        self.chain.num_timesteps()
    }

    /// Whether the model has a learned null embedding.
    pub fn has_learned_null(&self) -> bool {
        self.null_embedding.is_some()
    }

    /// Tokens per image `N`.
    pub fn num_tokens(&self) -> usize {
        let (h, w) = self.grid();
        h * w
    }

    /// The token grid `(rows, columns)` of an image.
    pub fn grid(&self) -> (usize, usize) {
        self.transformer.config().grid()
    }

    /// Pixels per token along each side (the VQ-VAE's downsampling factor `f`).
    pub fn downsampling_factor(&self) -> usize {
        self.vqvae.config().downsampling_factor()
    }

    /// The sidecar's record of this model as loaded: `name` as the user gave it, the hub
    /// `revision` asked for (hub models), the snapshot commit when the folder is a hub
    /// snapshot, the dtype, variant and device.
    pub fn model_record(&self, name: &str, revision: Option<&str>) -> crate::ModelRecord {
        crate::ModelRecord {
            name: name.to_string(),
            revision: revision.map(String::from),
            snapshot_commit: crate::snapshot_commit(&self.files.root),
            dtype: match self.options.int8_transformer {
                false => format!("{:?}", self.options.dtype).to_uppercase(),
                true => format!("{:?}+INT8", self.options.dtype).to_uppercase(),
            },
            variant: match self.options.variant {
                Variant::Default => "default".into(),
                Variant::Fp16 => "fp16".into(),
            },
            device: vq_nn::device_name(&self.device),
        }
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Normalised text states `(len(texts), 77, C)` and any truncation warnings.
    pub fn encode_text(&self, texts: &[String]) -> Result<(Tensor, Vec<String>)> {
        let batch = self
            .tokenizer
            .encode_batch(texts)
            .map_err(component("tokenizer"))?;
        let warnings = batch
            .prompts
            .iter()
            .zip(texts)
            .filter_map(|(p, text)| {
                p.truncated.as_ref().map(|t| {
                    format!(
                        "prompt {text:?} is {} tokens long; the model reads {}, so this was dropped: {:?}",
                        t.untruncated_len,
                        self.tokenizer.max_length(),
                        t.dropped_text
                    )
                })
            })
            .collect();
        let ids = batch
            .to_tensor(&self.device)
            .map_err(component("tokenizer"))?;
        let hidden = self
            .text_encoder
            .forward(&ids)
            .map_err(component("text_encoder"))?;
        Ok((
            l2_normalise_tokens(&hidden).map_err(component("text_encoder"))?,
            warnings,
        ))
    }

    /// Refuses a batch whose log-probabilities alone (`(B, K, N)` f32, twice with guidance)
    /// would exceed [`MAX_BATCH_BYTES`]: such runs go through [`GenerationOptions::batches`].
    fn check_batch_memory(&self, b: usize, guided: bool) -> Result<()> {
        let rows = if guided { 2 * b } else { b };
        let bytes = (rows as u128)
            * self.transformer.config().num_embeds() as u128
            * self.num_tokens() as u128
            * 4;
        if bytes > MAX_BATCH_BYTES as u128 {
            return Err(Error::InvalidOption(format!(
                "a batch of {b} images needs {:.1} GiB for its log-probabilities alone (limit {} \
                 GiB); generate in batches (GenerationOptions::batches, vqd --batch-size)",
                bytes as f64 / (1u64 << 30) as f64,
                MAX_BATCH_BYTES >> 30
            )));
        }
        Ok(())
    }

    /// Runs a generation with the given noise ([`discrete_diffusion::SeededNoise`] for a seed,
    /// or [`discrete_diffusion::ReplayNoise`] to replay recorded uniforms). `on_step` is called
    /// after every model call; returning an error from it (e.g. [`Error::Cancelled`]) stops the
    /// generation and `generate` returns that error.
    pub fn generate(
        &self,
        options: &GenerationOptions,
        noise: &mut dyn NoiseSource,
        on_step: impl FnMut(&StepEvent) -> Result<()>,
    ) -> Result<Generation> {
        self.run(options, None, noise, on_step)
    }

    /// [`VqDiffusionPipeline::generate`], or an edit when `edit` is given.
    pub(crate) fn run(
        &self,
        options: &GenerationOptions,
        edit: Option<TokenEdit>,
        noise: &mut dyn NoiseSource,
        mut on_step: impl FnMut(&StepEvent) -> Result<()>,
    ) -> Result<Generation> {
        let big_t = self.chain.num_timesteps();
        if edit.is_some() {
            options.validate_allowing_empty_prompts(big_t)?;
        } else {
            options.validate(big_t)?;
        }
        let n = options.num_images_per_prompt;
        let b = options.batch_size()?;
        let guided = options.guidance_scale > 1.0;
        self.check_batch_memory(b, guided)?;
        let repeat = Tensor::from_vec(
            (0..b as u32).map(|i| i / n as u32).collect::<Vec<_>>(),
            b,
            &self.device,
        )?;

        let start = Instant::now();
        let use_learned = match options.null_condition {
            NullCondition::Auto => self.null_embedding.is_some(),
            NullCondition::Learned => true,
            NullCondition::EmptyPrompt => false,
        };
        // The null condition `(1, L, C)`: the learned embedding, or the empty prompt's.
        let null_condition = || -> Result<Tensor> {
            if use_learned {
                let e = self.null_embedding.as_ref().ok_or_else(|| {
                    Error::InvalidOption(
                        "the model has no learned null embedding; use the empty prompt".into(),
                    )
                })?;
                Ok(e.unsqueeze(0)?)
            } else {
                Ok(self.encode_text(&[String::new()])?.0)
            }
        };
        let (mut cond, warnings) = self.encode_text(&options.prompts)?;
        // An empty prompt (allowed in edits) is unconditional: the null condition.
        if options.prompts.iter().any(|p| p.trim().is_empty()) {
            let null = null_condition()?;
            let rows = options
                .prompts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if p.trim().is_empty() {
                        Ok(null.clone())
                    } else {
                        Ok(cond.narrow(0, i, 1)?)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            cond = Tensor::cat(&rows, 0)?;
        }
        let cond = cond.index_select(&repeat, 0)?;
        let states = if guided {
            let null = null_condition()?.repeat((b, 1, 1))?;
            Tensor::cat(&[&null, &cond], 0)?
        } else {
            cond
        };
        let context = if self.options.cache_cross_attention {
            self.transformer.prepare_context(&states)
        } else {
            self.transformer.uncached_context(&states)
        }
        .map_err(component("transformer"))?;
        let text_time = start.elapsed();

        let start = Instant::now();
        let mut config = options.sampler_config(big_t, self.num_tokens());
        let init = match &edit {
            None => initial_state(&self.chain, b, self.num_tokens(), noise, &self.device)?,
            Some(e) if e.known.dims() != (b, self.num_tokens()) => {
                return Err(Error::InvalidOption(format!(
                    "the edit holds {:?} tokens for a batch of {b} images of {}",
                    e.known.dims(),
                    self.num_tokens()
                )));
            }
            Some(TokenEdit {
                start: None,
                tokens,
                ..
            }) => tokens.clone(),
            Some(e) => {
                let t = e.start.expect("matched above");
                config.start = Some(t);
                e.known
                    .initial_state(&self.chain, t, e.noised_unknown, noise, &self.device)?
            }
        };
        let known = edit.as_ref().map(|e| &e.known);
        let no_step = matches!(&edit, Some(TokenEdit { start: None, .. }));
        let mut calls = 0;
        let mut step_error = None;
        let mut callback = |e: &StepEvent| {
            calls += 1;
            if let Err(err) = on_step(e) {
                step_error = Some(err);
                return Err(discrete_diffusion::Error::Cancelled);
            }
            Ok(())
        };
        let denoiser = self.denoiser();
        let sampled = if no_step {
            Ok(init)
        } else if guided {
            let condition = Guided {
                context,
                scale: options.guidance_scale,
            };
            sample_with_known(
                &self.chain,
                &denoiser,
                &condition,
                &init,
                &config,
                known,
                noise,
                &mut callback,
            )
        } else {
            sample_with_known(
                &self.chain,
                &denoiser,
                &context,
                &init,
                &config,
                known,
                noise,
                &mut callback,
            )
        };
        if let Some(err) = step_error {
            return Err(err);
        }
        let tokens = sampled?;
        let denoise_time = start.elapsed();

        let start = Instant::now();
        let (h, w) = self.transformer.config().grid();
        let (decoded, images) = decode_token_grids(&self.vqvae, &tokens, h, w)?;
        let decode_time = start.elapsed();
        Ok(Generation {
            images,
            decoded,
            tokens,
            image_prompts: options.image_prompts(),
            warnings,
            model_calls: calls,
            timings: Timings {
                text: text_time,
                denoise: denoise_time,
                decode: decode_time,
            },
            seed: noise.seed(),
            edit: edit.map(|e| e.record),
        })
    }
}

/// Decodes `(B, h·w)` tokens into `(B, 3, H, W)` pixels in `[-1, 1]` and 8-bit images; NaN or
/// infinite pixels are an [`Error::NonFiniteOutput`] (no image is made from them).
pub(crate) fn decode_token_grids(
    vqvae: &VqModel,
    tokens: &Tensor,
    h: usize,
    w: usize,
) -> Result<(Tensor, Vec<image::RgbImage>)> {
    let b = tokens.dim(0)?;
    let decoded = vqvae
        .decode_tokens(&tokens.reshape((b, h, w))?)
        .map_err(component("vqvae"))?;
    if !decoded
        .flatten_all()?
        .abs()?
        .max(0)?
        .to_scalar::<f32>()?
        .is_finite()
    {
        return Err(Error::NonFiniteOutput(
            "the VQ-VAE decoded NaN or infinite pixels (check the weights with `vqd check \
             --weights`)"
                .into(),
        ));
    }
    let images = vq_codebook::tensor_to_images(&decoded).map_err(component("vqvae"))?;
    Ok((decoded, images))
}
