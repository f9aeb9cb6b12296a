//! Training of the autoregressive baseline with the same recipe as the diffusion denoiser
//! (`embedded::denoiser_training`): a CLIP-architecture text encoder trained jointly, caption
//! dropout to a learned null embedding (for classifier-free guidance), the same captions,
//! batches, AdamW groups, warm-up + cosine rate and gradient clipping; the loss is the
//! teacher-forced next-token cross-entropy. Checkpoints are atomic and resumable (every variable
//! plus the step), like the denoiser's.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use clip_text::{ClipTextModel, ClipTokenizer};
use rand::Rng;

use super::model::{ArConfig, ArTransformer};
use crate::embedded::EmbeddedConfig;
use crate::embedded::denoiser_training::recipe_groups;
use crate::embedded::denoiser_training::{repository_tokenizer_dir, step_rng};
use crate::embedded::joint_model::condition_with_null;
use crate::embedded::progress::{CsvLog, say, stage_bar};
use crate::embedded::seeded_init::{embedded_init_rule, seeded_init};
use crate::embedded::token_cache::TokenizedData;
use crate::embedded::training_captions::training_caption;
use vq_train::LrSchedule;
use vq_train::clip_grad_norm;
use vq_train::save_tensors_atomic;

const STEP_KEY: &str = "training.step";

/// Text encoder + AR transformer + null embedding, on one `VarMap`.
pub struct ArJoint {
    varmap: VarMap,
    /// Text encoder (`text_encoder.*`).
    pub text: ClipTextModel,
    /// The autoregressive transformer (`ar.*`).
    pub ar: ArTransformer,
    null: Var,
}

impl ArJoint {
    /// A seeded fresh model: the text encoder of `recipe`, an AR transformer of the same size as
    /// its denoiser (heads, head width, layers) over its codebook and grid.
    pub fn new(recipe: &EmbeddedConfig) -> anyhow::Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let text = ClipTextModel::new(vb.pp("text_encoder"), &recipe.text)?;
        let (h, w) = recipe.transformer.grid();
        let config = ArConfig {
            num_classes: recipe.codebook(),
            num_tokens: h * w,
            heads: recipe.transformer.num_attention_heads,
            head_dim: recipe.transformer.attention_head_dim,
            layers: recipe.transformer.num_layers,
            context_dim: recipe.text.hidden_size,
        };
        let ar = ArTransformer::new(&config, vb.pp("ar"))?;
        let shape = (recipe.text.max_position_embeddings, recipe.text.hidden_size);
        vb.get_with_hints(shape, "null.embeddings", candle_nn::Init::Const(0.0))?;
        seeded_init(
            &varmap,
            recipe.seed,
            embedded_init_rule(&recipe.text, recipe.denoiser.context_projection_scale),
        )?;
        let null = varmap
            .data()
            .lock()
            .expect("VarMap lock poisoned")
            .get("null.embeddings")
            .cloned()
            .expect("registered");
        Ok(Self {
            varmap,
            text,
            ar,
            null,
        })
    }

    /// Normalised text states `(B, 77, C)` of token ids, the null embedding where `!keep[b]`.
    pub fn condition(&self, ids: &Tensor, keep: &[bool]) -> anyhow::Result<Tensor> {
        Ok(condition_with_null(
            &self.text,
            Some(&self.null),
            ids,
            keep,
        )?)
    }

    /// The null embedding repeated for a batch of `b`.
    pub fn null_states(&self, b: usize) -> anyhow::Result<Tensor> {
        Ok(self.null.as_tensor().unsqueeze(0)?.repeat((b, 1, 1))?)
    }

    fn vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("VarMap lock poisoned");
        let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// The joint trainer.
pub struct ArTrainer {
    recipe: EmbeddedConfig,
    /// The model.
    pub model: ArJoint,
    tokenizer: ClipTokenizer,
    optimisers: vq_train::GroupedAdamW,
    vars: Vec<Var>,
    schedule: LrSchedule,
    step: u64,
    session_start: u64,
}

impl ArTrainer {
    /// Fresh, or resumed from `checkpoint` when it exists.
    pub fn resume_or_new(recipe: &EmbeddedConfig, checkpoint: &Path) -> anyhow::Result<Self> {
        let model = ArJoint::new(recipe)?;
        let named = model.vars();
        let mut step = 0;
        if checkpoint.is_file() {
            let saved = candle_core::safetensors::load(checkpoint, &Device::Cpu)?;
            for (name, var) in &named {
                let t = saved
                    .get(name)
                    .ok_or_else(|| anyhow::anyhow!("{}: lacks {name}", checkpoint.display()))?;
                var.set(&t.to_dtype(DType::F32)?)?;
            }
            step = saved
                .get(STEP_KEY)
                .ok_or_else(|| anyhow::anyhow!("{}: lacks {STEP_KEY}", checkpoint.display()))?
                .to_vec1::<u32>()?[0] as u64;
        }
        let d = &recipe.denoiser;
        Ok(Self {
            optimisers: vq_train::GroupedAdamW::new(
                &named,
                &recipe_groups(d),
                &vq_train::ParamsAdamW {
                    lr: d.learning_rate,
                    ..Default::default()
                },
            )?,
            vars: named.into_iter().map(|(_, v)| v).collect(),
            tokenizer: ClipTokenizer::from_pretrained(&repository_tokenizer_dir())?,
            schedule: LrSchedule {
                peak: d.learning_rate,
                final_fraction: d.final_lr_fraction,
                warmup: d.warmup_steps,
                resume_warmup: d.resume_warmup_steps,
                total: d.steps,
            },
            recipe: recipe.clone(),
            model,
            step,
            session_start: step,
        })
    }

    /// Steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Tokenizes prompts to ids `(B, 77)`.
    pub fn token_ids(&self, prompts: &[String]) -> anyhow::Result<Tensor> {
        Ok(self
            .tokenizer
            .encode_batch(prompts)?
            .to_tensor(&Device::Cpu)?)
    }

    /// One step; returns the loss (nats per token).
    pub fn train_step(&mut self, data: &TokenizedData) -> anyhow::Result<f64> {
        let d = &self.recipe.denoiser;
        // The same salt as the denoiser's trainer: the same batches and captions.
        let mut rng = step_rng(self.recipe.seed, self.step, 0xDE_0153);
        let n = data.scenes.len();
        let idx: Vec<u32> = (0..d.batch_size)
            .map(|_| rng.random_range(0..n) as u32)
            .collect();
        let x0 = data
            .tokens
            .index_select(&Tensor::from_vec(idx.clone(), idx.len(), &Device::Cpu)?, 0)?;
        let captions: Vec<String> = idx
            .iter()
            .map(|&i| training_caption(&data.scenes[i as usize], d.partial_caption_rate, &mut rng))
            .collect();
        let keep: Vec<bool> = idx
            .iter()
            .map(|_| rng.random::<f64>() >= d.caption_dropout)
            .collect();
        let states = self.model.condition(&self.token_ids(&captions)?, &keep)?;
        let tokens = x0.dim(1)?;
        let loss = (self.model.ar.nll(&x0, &states, true)?.mean_all()? / tokens as f64)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if value.is_finite() {
            let mut grads = loss.backward()?;
            let norm = clip_grad_norm(&mut grads, &self.vars, d.grad_clip)?;
            if norm.is_finite() {
                let lr = self.schedule.rate(self.step, self.session_start);
                self.optimisers.step(&grads, lr)?;
            }
        }
        self.step += 1;
        Ok(value)
    }

    /// Writes every variable and the step atomically.
    pub fn save_checkpoint(&self, path: &Path) -> anyhow::Result<()> {
        let mut tensors: HashMap<String, Tensor> = self
            .model
            .vars()
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_tensor().copy()?)))
            .collect::<anyhow::Result<_>>()?;
        tensors.insert(
            STEP_KEY.into(),
            Tensor::new(&[self.step as u32], &Device::Cpu)?,
        );
        Ok(save_tensors_atomic(path, &tensors)?)
    }

    /// Trains to the recipe's step count with a progress bar, a CSV log and periodic checkpoints.
    pub fn fit(
        &mut self,
        data: &TokenizedData,
        checkpoint: &Path,
        log_path: &Path,
    ) -> anyhow::Result<()> {
        let total = self.recipe.denoiser.steps;
        let bar = stage_bar("ar", total, self.step);
        say(
            &bar,
            &format!("[ar] training from step {} of {total}", self.step),
        );
        let log = CsvLog::open(log_path, "step,loss,seconds")?;
        let start = Instant::now();
        let mut last_checkpoint = Instant::now();
        while self.step < total {
            let loss = self.train_step(data)?;
            bar.set_position(self.step);
            bar.set_message(format!("loss {loss:.3} nats/token"));
            if self.step.is_multiple_of(10) || self.step == total {
                log.row(&format!(
                    "{},{loss},{:.1}",
                    self.step,
                    start.elapsed().as_secs_f64()
                ))?;
            }
            if last_checkpoint.elapsed().as_secs() >= self.recipe.checkpoint_seconds
                || self.step == total
            {
                self.save_checkpoint(checkpoint)?;
                last_checkpoint = Instant::now();
            }
        }
        bar.finish_and_clear();
        Ok(())
    }
}
