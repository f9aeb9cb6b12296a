//! [`TrainableDenoiser`]: what [`crate::DenoiserTrainer`] needs from a model — its variables,
//! and `log p̂(x₀ | x_t, t, condition)` in training mode with some examples' conditions dropped
//! to the null condition (classifier-free training, Improved VQ-Diffusion §3.2) — and its
//! text-to-image implementation, [`TextConditionedModel`] (a [`JointModel`] with its
//! tokenizer). The class-conditional and unconditional one is
//! [`crate::Condition2ImageModel`].

use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use clip_text::ClipTokenizer;
use discrete_diffusion::Timesteps;

use crate::{Error, JointModel, Result, TEXT_PREFIX};

/// A denoiser the VQ-Diffusion objective can train.
pub trait TrainableDenoiser {
    /// One example's condition: a caption, a class label, nothing.
    type Condition;

    /// Every variable (what a checkpoint saves and the EMA averages).
    fn varmap(&self) -> &VarMap;

    /// The variables the optimiser updates, by name: all, or all but the text encoder's when
    /// `freeze_text_encoder` (see [`TrainableDenoiser::has_text_encoder`]).
    fn trainable(&self, freeze_text_encoder: bool) -> Vec<(String, Var)>;

    /// Whether there is a text encoder to freeze.
    fn has_text_encoder(&self) -> bool {
        false
    }

    /// Whether the null condition is learned (needed to train with condition dropout).
    fn has_learned_null(&self) -> bool;

    /// `log p̂(x₀)` `(B, K, N)` f32 for tokens `x_t` `(B, N)` at per-sample timesteps `t`, with
    /// `conditions[b]` where `keep[b]` and the null condition elsewhere, differentiable in
    /// every trainable variable.
    fn training_log_p_x0(
        &self,
        x_t: &Tensor,
        t: &[usize],
        conditions: &[Self::Condition],
        keep: &[bool],
    ) -> Result<Tensor>;
}

/// A text-to-image model to train: the jointly trained parts and the tokenizer that turns
/// captions into their ids.
pub struct TextConditionedModel {
    /// Text encoder, denoiser and learned null.
    pub joint: JointModel,
    /// The captions' tokenizer.
    pub tokenizer: ClipTokenizer,
}

impl TextConditionedModel {
    /// `joint` conditioned on captions tokenized by `tokenizer`.
    pub fn new(joint: JointModel, tokenizer: ClipTokenizer) -> Self {
        Self { joint, tokenizer }
    }
}

impl TrainableDenoiser for TextConditionedModel {
    type Condition = String;

    fn varmap(&self) -> &VarMap {
        &self.joint.varmap
    }

    fn trainable(&self, freeze_text_encoder: bool) -> Vec<(String, Var)> {
        self.joint.trainable(freeze_text_encoder)
    }

    fn has_text_encoder(&self) -> bool {
        self.joint
            .named_vars()
            .iter()
            .any(|(n, _)| n.starts_with(TEXT_PREFIX))
    }

    fn has_learned_null(&self) -> bool {
        self.joint.null.is_some()
    }

    fn training_log_p_x0(
        &self,
        x_t: &Tensor,
        t: &[usize],
        captions: &[String],
        keep: &[bool],
    ) -> Result<Tensor> {
        let ids = self
            .tokenizer
            .encode_batch(captions)
            .and_then(|batch| batch.to_tensor(x_t.device()))
            .map_err(|e| Error::InvalidSetting(format!("tokenizer: {e}")))?;
        let states = self.joint.condition(&ids, keep)?;
        let transformer = &self.joint.transformer;
        transformer
            .uncached_context(&states)
            .and_then(|context| {
                transformer.forward_t(x_t, Timesteps::PerSample(t.to_vec()), Some(&context), true)
            })
            .map_err(|e| Error::InvalidSetting(format!("transformer: {e}")))
    }
}
