//! [`Condition2ImageTransformer`]: the original VQ-Diffusion's class-conditional denoiser (the
//! ImageNet models of microsoft/VQ-Diffusion; Gu et al. 2022 §4.3), with module names that
//! mirror the checkpoint's keys, so its `VarBuilder` prefixes read like the original state dict:
//!
//! ```text
//! content_emb.{emb,height_emb,width_emb}.weight          token + row/column position tables
//! blocks.{i}.ln1.{emb.weight,linear.*}                     timestep AdaLN
//! blocks.{i}.attn.{query,key,value,proj}.*                 self-attention
//! blocks.{i}.ln2.{emb.weight,linear.*}                     class-label AdaLN
//! blocks.{i}.mlp.{conv1,conv2}.*                           convolutional feed-forward
//! to_logits.{0,1}.*                                        LayerNorm + Linear head
//! ```
//!
//! Block: `x += attn(ln1(x, t))`, `x += conv_mlp(ln2(x, label))` — no cross-attention; the
//! label enters only through the second AdaLN, whose table row for a label past the table is
//! the mean of all rows (the original's "no class" for a 1000-row table). The unconditional
//! sibling (`UnCondition2ImageTransformer`, `num_labels = 0`) has a plain affine LayerNorm
//! there (`blocks.{i}.ln2.{weight,bias}`) and takes only label `0` ("no class"). The head is the text
//! model's: log-softmax over the `K` classes in f64. Positions: token `n` of the row-major
//! grid gets entry `n` of the flattened `H × W` position sum, also when the grid is smaller
//! than the tables (ImageNet: 16×16 tokens, 32-row tables).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use discrete_diffusion::{Denoiser, Prediction, Timesteps, classifier_free_guidance};

use crate::ada_layer_norm::AdaLayerNorm;
use crate::attention::Attention;
use crate::condition2image_config::Condition2ImageConfig;
use crate::conv_mlp::ConvMlp;
use crate::image_positional_embeddings::ImagePositionalEmbeddings;
use crate::output_head::OutputHead;
use crate::{Error, Result};
use vq_nn::LayerNorm;

/// The norm in front of a block's feed-forward: the class AdaLN, or a plain LayerNorm in an
/// unconditional model.
#[derive(Debug, Clone)]
enum ClassNorm {
    Class(AdaLayerNorm),
    Plain(LayerNorm),
}

#[derive(Debug, Clone)]
struct ClassBlock {
    ln1: AdaLayerNorm,
    attn: Attention,
    ln2: ClassNorm,
    mlp: ConvMlp,
}

/// The class-conditional denoiser.
#[derive(Debug, Clone)]
pub struct Condition2ImageTransformer {
    config: Condition2ImageConfig,
    content_emb: ImagePositionalEmbeddings,
    blocks: Vec<ClassBlock>,
    to_logits: OutputHead,
}

impl Condition2ImageTransformer {
    /// Builds the model from `vb` (at the state dict's root) for `config`.
    pub fn new(vb: VarBuilder, config: &Condition2ImageConfig) -> Result<Self> {
        config.validate()?;
        let d = config.width;
        let [h, w] = config.position_table;
        let blocks = (0..config.num_layers)
            .map(|i| {
                let vb = vb.pp("blocks").pp(i);
                Ok(ClassBlock {
                    ln1: AdaLayerNorm::new(
                        vb.pp("ln1"),
                        d,
                        config.num_embeds_ada_norm,
                        config.norm_eps,
                    )?,
                    attn: Attention::original(vb.pp("attn"), d, config.num_attention_heads)?,
                    ln2: if config.is_unconditional() {
                        ClassNorm::Plain(LayerNorm::new(vb.pp("ln2"), d, config.norm_eps, true)?)
                    } else {
                        ClassNorm::Class(AdaLayerNorm::new(
                            vb.pp("ln2"),
                            d,
                            config.class_table_rows,
                            config.norm_eps,
                        )?)
                    },
                    mlp: ConvMlp::new(
                        vb.pp("mlp"),
                        d,
                        config.mlp_hidden_times,
                        config.sample_size,
                    )?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            content_emb: ImagePositionalEmbeddings::new(
                vb.pp("content_emb"),
                config.num_vector_embeds,
                h,
                w,
                d,
            )?,
            blocks,
            to_logits: OutputHead::original(
                vb.pp("to_logits"),
                d,
                config.num_classes(),
                config.norm_eps,
            )?,
            config: config.clone(),
        })
    }

    /// Loads `dir/config.json` and the weights beside it (`diffusion_pytorch_model.safetensors`),
    /// strictly: a missing or unused tensor is an error naming its key. `dir` is a pipeline
    /// root (its `transformer/` is used) or the transformer folder.
    pub fn from_pretrained(dir: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Self> {
        let dir = vq_nn::component_folder(dir.as_ref(), "transformer", "config.json");
        let config = Condition2ImageConfig::from_file(dir.join("config.json"))?;
        let weights = vq_nn::WeightNames::DIFFUSERS.find(&dir, vq_nn::Variant::Default)?;
        let source = vq_nn::WeightSource::open(weights)?;
        let model = Self::new(source.var_builder(dtype, device), &config)?;
        source.ensure_all_used(|_| false)?;
        Ok(model)
    }

    /// The configuration.
    pub fn config(&self) -> &Condition2ImageConfig {
        &self.config
    }

    /// `log p̂(x_0)` `(B, K, N)` f32 for tokens `x_t` `(B, N)` at timestep `t`, one class label
    /// per sample (`config().null_label()` = no class).
    pub fn forward(
        &self,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
        labels: &[usize],
    ) -> Result<Tensor> {
        self.forward_t(x_t, t, labels, false)
    }

    /// [`Condition2ImageTransformer::forward`] in training mode when `train` (differentiable
    /// kernels only; the model has no dropout), as the training loss needs.
    pub fn forward_t(
        &self,
        x_t: &Tensor,
        t: impl Into<Timesteps>,
        labels: &[usize],
        train: bool,
    ) -> Result<Tensor> {
        let (b, n) = x_t.dims2().map_err(|_| Error::Shape {
            what: "x_t",
            expected: "(batch, tokens) token ids".into(),
            found: x_t.dims().to_vec(),
        })?;
        if n != self.config.num_tokens() {
            return Err(Error::Shape {
                what: "x_t",
                expected: format!("(batch, {}) tokens", self.config.num_tokens()),
                found: x_t.dims().to_vec(),
            });
        }
        if labels.len() != b {
            return Err(Error::Condition(format!(
                "{} class labels for a batch of {b}",
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l > self.config.num_labels) {
            return Err(Error::Condition(if self.config.is_unconditional() {
                format!("class label {bad} for an unconditional model (its only label is 0)")
            } else {
                format!(
                    "class label {bad} is out of range (0..{} are classes, {} is \"no class\")",
                    self.config.num_labels, self.config.num_labels
                )
            }));
        }
        let t = t.into();
        let mut x = self.content_emb.forward(x_t, DType::F32)?;
        let dtype = x.dtype();
        for block in &self.blocks {
            let h = block.ln1.forward(&x, &t, train)?;
            x = (&x + block.attn.forward(&h, None, train)?)?;
            let h = match &block.ln2 {
                ClassNorm::Class(ln2) => {
                    let m = ln2.modulation_for_rows(labels, dtype)?;
                    ln2.forward_modulated(&x, &m, dtype, train)?
                }
                ClassNorm::Plain(ln2) => vq_nn::cast(&ln2.forward_t(&x, train)?, dtype)?,
            };
            x = (&x + block.mlp.forward_t(&h, train)?)?;
        }
        self.to_logits.forward(&x, train)
    }
}

/// The condition of a class-conditional denoising step: one label per sample and, for
/// classifier-free guidance, a scale (`1` = none; the unconditional pass uses the null label).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassCondition {
    /// One class label per sample.
    pub labels: Vec<usize>,
    /// Guidance scale `s`.
    pub scale: f64,
}

impl Condition2ImageTransformer {
    /// Guidance needs a condition to contrast with "no class".
    fn check_guidance(&self, c: &ClassCondition) -> discrete_diffusion::Result<()> {
        if self.config.is_unconditional() {
            return Err(Error::Condition(format!(
                "guidance scale {} on an unconditional model: it has no condition to guide by \
                 (use scale 1)",
                c.scale
            ))
            .into());
        }
        Ok(())
    }

    fn halves(&self, x_t: &Tensor, t: usize, c: &ClassCondition) -> Result<(Tensor, Tensor)> {
        let b = c.labels.len();
        let mut labels = vec![self.config.null_label(); b];
        labels.extend(&c.labels);
        let both = self.forward(&Tensor::cat(&[x_t, x_t], 0)?, t, &labels)?;
        Ok((both.narrow(0, 0, b)?, both.narrow(0, b, b)?))
    }
}

impl Denoiser<ClassCondition> for Condition2ImageTransformer {
    fn log_p_x0(
        &self,
        x_t: &Tensor,
        t: usize,
        c: &ClassCondition,
    ) -> discrete_diffusion::Result<Tensor> {
        if c.scale == 1.0 {
            return Ok(self.forward(x_t, t, &c.labels)?);
        }
        self.check_guidance(c)?;
        let (u, cond) = self.halves(x_t, t, c)?;
        classifier_free_guidance(&u, &cond, c.scale)
    }

    fn predict(
        &self,
        x_t: &Tensor,
        t: usize,
        c: &ClassCondition,
    ) -> discrete_diffusion::Result<Prediction> {
        if c.scale == 1.0 {
            return Ok(Prediction::LogProbs(self.forward(x_t, t, &c.labels)?));
        }
        self.check_guidance(c)?;
        let (unconditional, conditional) = self.halves(x_t, t, c)?;
        Ok(Prediction::Guided {
            unconditional,
            conditional,
            scale: c.scale,
        })
    }
}
