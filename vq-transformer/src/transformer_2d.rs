//! `Transformer2DModel` in discrete ("vectorized") mode (docs/reference-behaviour.md §3.8): token + position
//! embedding, `num_layers` [`BasicTransformerBlock`]s conditioned on the timestep (AdaLN) and
//! the text (cross-attention), and the [`OutputHead`] returning `log p̂(x_0)` `(B, K−1, N)` f32.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::basic_transformer_block::{BasicTransformerBlock, CrossInput};
use crate::config::Transformer2DConfig;
use crate::image_positional_embeddings::ImagePositionalEmbeddings;
use crate::output_head::OutputHead;
use crate::text_context::TextContext;
use discrete_diffusion::Timesteps;

use crate::{Error, Result};

/// diffusers' `Transformer2DModel` (discrete inputs).
#[derive(Debug, Clone)]
pub struct Transformer2DModel {
    config: Transformer2DConfig,
    latent_image_embedding: ImagePositionalEmbeddings,
    transformer_blocks: Vec<BasicTransformerBlock>,
    head: OutputHead,
    compute_dtype: DType,
    device: Device,
}

impl Transformer2DModel {
    /// Builds the model from `vb` (diffusers key names at the root of `vb`): an mmap'd
    /// checkpoint, a `.bin`, or a [`candle_nn::VarMap`] for training.
    pub fn new(vb: VarBuilder, config: &Transformer2DConfig) -> Result<Self> {
        Self::build(vb, config, false)
    }

    /// As [`Transformer2DModel::new`], with each block's projections quantised to 8 bits as
    /// soon as the block is read ([`Transformer2DModel::with_int8_weights`]): only one
    /// block's full-precision projections are held at a time, so loading peaks near the
    /// 8-bit model's size rather than the full model's.
    pub fn new_int8(vb: VarBuilder, config: &Transformer2DConfig) -> Result<Self> {
        Self::build(vb, config, true)
    }

    fn build(vb: VarBuilder, config: &Transformer2DConfig, int8: bool) -> Result<Self> {
        config.validate()?;
        let dim = config.inner_dim();
        let (h, w) = config.grid();
        let latent_image_embedding = ImagePositionalEmbeddings::new(
            vb.pp("latent_image_embedding"),
            config.num_embeds(),
            h,
            w,
            dim,
        )?;
        let transformer_blocks = (0..config.num_layers)
            .map(|i| {
                let block = BasicTransformerBlock::new(vb.pp("transformer_blocks").pp(i), config)?;
                if int8 { block.to_int8() } else { Ok(block) }
            })
            .collect::<Result<Vec<_>>>()?;
        // diffusers builds `norm_out` as `nn.LayerNorm(inner_dim)`: PyTorch's default eps 1e-5,
        // whatever `norm_eps` says.
        let head = OutputHead::new(vb.clone(), dim, config.num_classes(), 1e-5)?;
        Ok(Self {
            config: config.clone(),
            latent_image_embedding,
            transformer_blocks,
            head,
            compute_dtype: vq_nn::compute_dtype(vb.dtype(), vb.device()),
            device: vb.device().clone(),
        })
    }

    /// Loads a diffusers folder: a pipeline root (uses `transformer/`) or the transformer
    /// folder itself, with `config.json` and `diffusion_pytorch_model.safetensors` (mmap'd)
    /// or `diffusion_pytorch_model.bin` (PyTorch pickle). Weights are stored as `dtype`.
    pub fn from_pretrained(dir: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Self> {
        let dir = vq_nn::component_folder(dir.as_ref(), "transformer", "config.json");
        let config = Transformer2DConfig::from_file(dir.join("config.json"))?;
        let weights = vq_nn::WeightNames::DIFFUSERS.find(&dir, vq_nn::Variant::Default)?;
        Self::from_weights(&config, weights, dtype, device)
    }

    /// Loads weights from one `.safetensors` or PyTorch `.bin`/`.pth` file (memory-mapped),
    /// strictly: a missing, mis-shaped or non-float weight, and any tensor of the file the
    /// model built from `config` does not use, are errors naming the key.
    pub fn from_weights(
        config: &Transformer2DConfig,
        weights: impl AsRef<Path>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::load_weights(config, weights.as_ref(), dtype, device, false)
    }

    /// As [`Transformer2DModel::from_weights`], quantising each block's projections to 8 bits
    /// as it is read ([`Transformer2DModel::new_int8`]): the projections are then held in a
    /// quarter of their f32 bytes, and loading never holds the full-precision model. `dtype`
    /// is the storage of what stays unquantised (embedding, norms, output head).
    pub fn from_weights_int8(
        config: &Transformer2DConfig,
        weights: impl AsRef<Path>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::load_weights(config, weights.as_ref(), dtype, device, true)
    }

    fn load_weights(
        config: &Transformer2DConfig,
        weights: &Path,
        dtype: DType,
        device: &Device,
        int8: bool,
    ) -> Result<Self> {
        let source = vq_nn::WeightSource::open(weights)?;
        let model = Self::build(source.var_builder(dtype, device), config, int8)?;
        source.ensure_all_used(|_| false)?;
        Ok(model)
    }

    /// Sets the dtype activations are computed in (weights keep their storage dtype and are
    /// converted per use when it differs).
    pub fn with_compute_dtype(mut self, dtype: DType) -> Self {
        self.compute_dtype = dtype;
        self
    }

    /// Quantises the projections of every block's attention and feed-forward to 8 bits per
    /// output channel ([`vq_nn::Int8Weight`]; activations are quantised per token at each
    /// call). They are then multiplied as integers on the CPU's inference path (by
    /// AVX-512-VNNI where the CPU has it). The AdaLN norms' timestep projections are replaced
    /// by their f32 table over the timesteps (the same modulations). The embedding, the norms
    /// and the output head keep their precision. The full-precision projections are dropped block by block, so the
    /// model then holds them in a quarter of their f32 bytes
    /// ([`Transformer2DModel::from_weights_int8`] quantises while loading instead). Errors
    /// when the weights are not on the CPU or are trainable.
    ///
    /// ```no_run
    /// # use candle_core::{DType, Device};
    /// # use vq_transformer::Transformer2DModel;
    /// let model = Transformer2DModel::from_pretrained("models/shape-world", DType::F32, &Device::Cpu)?
    ///     .with_int8_weights()?;
    /// # Ok::<(), vq_transformer::Error>(())
    /// ```
    pub fn with_int8_weights(mut self) -> Result<Self> {
        // Each block is dropped as soon as its 8-bit copy exists.
        self.transformer_blocks = std::mem::take(&mut self.transformer_blocks)
            .into_iter()
            .map(|block| block.to_int8())
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// Whether [`Transformer2DModel::with_int8_weights`] quantised this model.
    pub fn has_int8_weights(&self) -> bool {
        self.transformer_blocks
            .iter()
            .any(BasicTransformerBlock::has_int8_weights)
    }

    /// The configuration.
    pub fn config(&self) -> &Transformer2DConfig {
        &self.config
    }

    /// The dtype activations are computed in.
    pub fn compute_dtype(&self) -> DType {
        self.compute_dtype
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The blocks, in order.
    pub fn transformer_blocks(&self) -> &[BasicTransformerBlock] {
        &self.transformer_blocks
    }

    /// Encoder states `(B, L, C)` → a context with the cross-attention keys/values of every
    /// block computed once (reuse it for all denoising steps of a generation).
    pub fn prepare_context(&self, encoder_hidden_states: &Tensor) -> Result<TextContext> {
        let states = self.check_states(encoder_hidden_states)?;
        let kv = self
            .transformer_blocks
            .iter()
            .map(|b| b.attn2().map(|a| a.key_value(&states)).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok(TextContext::new(states, Some(kv)))
    }

    /// Encoder states wrapped without caching: every forward recomputes the keys/values, as
    /// diffusers does (for parity tests).
    pub fn uncached_context(&self, encoder_hidden_states: &Tensor) -> Result<TextContext> {
        Ok(TextContext::new(
            self.check_states(encoder_hidden_states)?,
            None,
        ))
    }

    fn check_states(&self, s: &Tensor) -> Result<Tensor> {
        let c = self.config.cross_attention_dim.unwrap_or(0);
        match s.dims() {
            &[_, _, cc] if cc == c => Ok(s.to_dtype(self.compute_dtype)?),
            _ => Err(Error::Shape {
                what: "encoder_hidden_states",
                expected: format!("(batch, tokens, {c})"),
                found: s.dims().to_vec(),
            }),
        }
    }

    fn check_timestep(&self, t: &Timesteps, batch: usize) -> Result<()> {
        if let Timesteps::PerSample(ts) = t
            && ts.len() != batch
        {
            return Err(Error::TimestepCount {
                given: ts.len(),
                batch,
            });
        }
        if let Some(rows) = self.config.num_embeds_ada_norm {
            for &t in t.as_slice() {
                if t >= rows {
                    return Err(Error::TimestepOutOfRange { t, rows });
                }
            }
        }
        Ok(())
    }

    /// diffusers' forward: ids `x_t` `(B, N)`, timestep(s), encoder states `(B, L, C)` →
    /// `log p̂(x_0)` `(B, K−1, N)` f32 (inference mode, keys/values computed in the pass).
    pub fn forward(
        &self,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
        encoder_hidden_states: &Tensor,
    ) -> Result<Tensor> {
        let context = self.uncached_context(encoder_hidden_states)?;
        self.forward_t(x_t, t, Some(&context), false)
    }

    /// Inference forward with a prepared (usually cached) context.
    pub fn forward_with_context(
        &self,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
        context: &TextContext,
    ) -> Result<Tensor> {
        self.forward_t(x_t, t, Some(context), false)
    }

    /// Forward pass in inference (`train = false`) or training mode (dropout active, only
    /// differentiable ops). `context` may be `None` only for models without cross-attention.
    pub fn forward_t(
        &self,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
        context: Option<&TextContext>,
        train: bool,
    ) -> Result<Tensor> {
        let h = self.hidden_states(x_t, &t.into(), context, train)?;
        self.head.forward(&h, train)
    }

    /// Hidden states after the last block, `(B, N, D)` in the compute dtype.
    pub fn hidden_states(
        &self,
        x_t: &Tensor,
        t: &Timesteps,
        context: Option<&TextContext>,
        train: bool,
    ) -> Result<Tensor> {
        let x_t = x_t.to_device(&self.device)?;
        let mut h = self
            .latent_image_embedding
            .forward(&x_t, self.compute_dtype)?;
        let batch = h.dim(0)?;
        self.check_timestep(t, batch)?;
        if let Some(c) = context
            && c.batch() != batch
        {
            return Err(Error::Context(format!(
                "prepared for a batch of {}, used with a batch of {batch}",
                c.batch()
            )));
        }
        for (i, block) in self.transformer_blocks.iter().enumerate() {
            let m = block.modulation(t, self.compute_dtype)?;
            let text = match context {
                None => CrossInput::None,
                Some(c) => match c.cached(i) {
                    Some(kv) => CrossInput::Cached(kv),
                    None => CrossInput::States(c.states()),
                },
            };
            h = block.forward(&h, &m, text, train)?;
        }
        Ok(h)
    }

    /// Classifier-free guidance in one batched pass: `context` holds `2B` states,
    /// unconditional first (`[null; prompt]`, as diffusers batches them); `x_t` `(B, N)` is
    /// duplicated, and the halves are combined with
    /// [`discrete_diffusion::classifier_free_guidance`] → renormalised `(B, K−1, N)` f32.
    /// With `scale == 1` only the conditional half is run.
    pub fn guided_log_p_x0(
        &self,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
        context: &TextContext,
        scale: f64,
    ) -> Result<Tensor> {
        let t = t.into();
        let b = x_t.dim(0)?;
        if context.batch() != 2 * b {
            return Err(Error::Context(format!(
                "guidance needs 2·{b} states (unconditional first), found {}",
                context.batch()
            )));
        }
        if scale == 1.0 {
            let cond = context.narrow(b, b)?;
            return self.forward_with_context(x_t, t, &cond);
        }
        let (uncond, cond) = self.guidance_halves(x_t, t, context)?;
        Ok(discrete_diffusion::classifier_free_guidance(
            &uncond, &cond, scale,
        )?)
    }

    /// The unconditional and conditional `log p̂(x_0)` `(B, K−1, N)` of `x_t` `(B, N)` under a
    /// `2B` guidance context (unconditional first), in one batched pass.
    pub fn guidance_halves(
        &self,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
        context: &TextContext,
    ) -> Result<(Tensor, Tensor)> {
        let t = t.into();
        let b = x_t.dim(0)?;
        if context.batch() != 2 * b {
            return Err(Error::Context(format!(
                "guidance needs 2·{b} states (unconditional first), found {}",
                context.batch()
            )));
        }
        let both = Tensor::cat(&[x_t, x_t], 0)?;
        let logp = self.forward_with_context(&both, t.repeat_batch(2), context)?;
        Ok((logp.narrow(0, 0, b)?, logp.narrow(0, b, b)?))
    }
}
