//! Stage 3: joint training of the text encoder, the denoiser and the learned null embedding —
//! the recipe's settings on `vq_train::DenoiserTrainer` (VLB + auxiliary x₀ loss, mask-and-replace
//! chain, importance-sampled timesteps, caption dropout to the learned null embedding, AdamW
//! under warm-up + cosine, global gradient-norm clipping), with what is the shape world's own:
//! each example's caption drawn anew every time it is seen (`training_caption`: sometimes only
//! some attributes), three parameter groups ([`recipe_groups`]: weight matrices with decay;
//! embeddings, norms, biases and the null embedding without; the text-state projections at
//! `context_projection_scale` times the rate), and the recipe's per-step seeds.
//!
//! Checkpoints are vq-train's (weights, AdamW moments, sampler history, step: a resume continues
//! exactly) plus `recipe.json` beside them: the sessions, the wall time and the recipe, which a
//! resume must share.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Tensor, Var};
use clip_text::ClipTokenizer;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::config::{DenoiserStage, EmbeddedConfig};
use super::joint_model::{JointModel, NULL_KEY, new_joint_model};
use super::progress::{CsvLog, say, stage_bar};
use super::seeded_init::is_context_projection;
use super::token_cache::TokenizedData;
use super::training_captions::training_caption;
use discrete_diffusion::TimestepSampling;
use rand_chacha::ChaCha12Rng;
use vq_train::{DenoiserTrainingConfig, ParamGroup, TextConditionedModel, TokenDataset};

/// Everything besides vq-train's checkpoint that the recipe keeps across sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Step at which each training session started (resumes after the first).
    pub sessions: Vec<u64>,
    /// Training wall time over all sessions (s).
    pub seconds: f64,
    /// The recipe (a resume must use the same).
    pub config: EmbeddedConfig,
}

/// The recipe's data: the token grids, with each caption drawn from its scene whenever an
/// example is drawn (sometimes naming only some attributes).
struct RecipeData<'a> {
    data: &'a TokenizedData,
    partial_caption_rate: f64,
}

impl TokenDataset for RecipeData<'_> {
    type Condition = String;

    fn tokens(&self) -> &Tensor {
        &self.data.tokens
    }

    fn len(&self) -> usize {
        self.data.scenes.len()
    }

    fn condition(&self, index: usize, rng: &mut ChaCha12Rng) -> String {
        training_caption(&self.data.scenes[index], self.partial_caption_rate, rng)
    }
}

/// The joint trainer.
pub struct DenoiserTrainer {
    config: EmbeddedConfig,
    inner: vq_train::DenoiserTrainer,
    state: TrainerState,
}

/// The CLIP BPE tokenizer shipped in the repository (`fixtures/tokenizer/`).
pub fn repository_tokenizer_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokenizer")
}

/// The recipe's seed of step `step` of a stream named by `salt`.
pub(crate) fn step_seed(seed: u64, step: u64, salt: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step.wrapping_mul(0xD1B5_4A32_D192_ED03))
        ^ salt
}

pub(crate) fn step_rng(seed: u64, step: u64, salt: u64) -> StdRng {
    StdRng::seed_from_u64(step_seed(seed, step, salt))
}

/// The denoiser stage's stream.
fn denoiser_step_seed(seed: u64, step: u64) -> u64 {
    step_seed(seed, step, 0xDE_0153)
}

/// Whether a variable is weight-decayed: weight matrices, not embeddings/tables/norms/biases.
pub fn decays(name: &str, var: &Var) -> bool {
    var.rank() == 2 && !name.contains("emb") && name != NULL_KEY
}

/// The recipe's AdamW groups (also the autoregressive baseline's).
pub fn recipe_groups(stage: &DenoiserStage) -> Vec<ParamGroup> {
    let wd = stage.weight_decay;
    vec![
        ParamGroup::new("matrices", wd, 1.0, |n, v| {
            decays(n, v) && !is_context_projection(n)
        }),
        ParamGroup::new("context", wd, stage.context_projection_scale, |n, _| {
            is_context_projection(n)
        }),
        ParamGroup::new("no_decay", 0.0, 1.0, |n, v| !decays(n, v)),
    ]
}

/// vq-train's settings for the recipe's stage.
fn training_config(config: &EmbeddedConfig) -> DenoiserTrainingConfig {
    let d = &config.denoiser;
    DenoiserTrainingConfig {
        steps: d.steps,
        batch_size: d.batch_size,
        learning_rate: d.learning_rate,
        warmup: d.warmup_steps,
        final_lr_fraction: d.final_lr_fraction,
        weight_decay: d.weight_decay,
        grad_clip: d.grad_clip,
        caption_dropout: d.caption_dropout,
        freeze_text_encoder: false,
        ema_decay: None,
        timesteps: TimestepSampling::Importance,
        loss: d.loss.clone(),
        seed: config.seed,
    }
}

fn recipe_path(checkpoint: &Path) -> std::path::PathBuf {
    checkpoint.with_file_name("recipe.json")
}

impl DenoiserTrainer {
    /// A fresh trainer (starting from the `initial` tensors where given, e.g. a pre-trained
    /// text encoder), or one resumed from the checkpoint folder `checkpoint` when it exists.
    pub fn resume_or_new(
        config: &EmbeddedConfig,
        checkpoint: &Path,
        initial: Option<&HashMap<String, Tensor>>,
    ) -> anyhow::Result<Self> {
        let model = new_joint_model(config)?;
        if let Some(tensors) = initial {
            model.load_part(tensors)?;
        }
        let inner = vq_train::DenoiserTrainer::new(
            TextConditionedModel::new(
                model,
                ClipTokenizer::from_pretrained(&repository_tokenizer_dir())?,
            ),
            config.chain.chain(config.codebook())?,
            training_config(config),
        )?
        .with_param_groups(&recipe_groups(&config.denoiser))?
        .with_step_seed(denoiser_step_seed);
        let mut trainer = Self {
            config: config.clone(),
            inner,
            state: TrainerState {
                sessions: Vec::new(),
                seconds: 0.0,
                config: config.clone(),
            },
        };
        if trainer.inner.resume(checkpoint)? {
            let path = recipe_path(checkpoint);
            let saved: TrainerState = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            anyhow::ensure!(
                &saved.config == config,
                "{} was written by a run with a different configuration; use another run folder",
                path.display()
            );
            trainer.state = saved;
        }
        trainer.state.sessions.push(trainer.inner.step());
        Ok(trainer)
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.inner.step()
    }

    /// The state (sessions, wall time).
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// The model.
    pub fn model(&self) -> &JointModel {
        &self.inner.model().joint
    }

    /// Writes the checkpoint folder and `recipe.json` beside it.
    pub fn save_checkpoint(&self, path: &Path) -> anyhow::Result<()> {
        self.inner.save_checkpoint(path)?;
        Ok(vq_train::write_json_atomic(
            &recipe_path(path),
            &self.state,
        )?)
    }

    /// The recipe's data for vq-train.
    fn prepare<'a>(&self, data: &'a TokenizedData) -> RecipeData<'a> {
        RecipeData {
            data,
            partial_caption_rate: self.config.denoiser.partial_caption_rate,
        }
    }

    /// Trains until the configured step count (or `max_steps` more steps in this session),
    /// logging to `log_path` and checkpointing to `checkpoint` every `checkpoint_seconds` and at
    /// the end of the session.
    pub fn fit(
        &mut self,
        data: &TokenizedData,
        checkpoint: &Path,
        log_path: &Path,
        max_steps: Option<u64>,
    ) -> anyhow::Result<f64> {
        let total = self.config.denoiser.steps;
        let stop = max_steps.map_or(total, |m| (self.inner.step() + m).min(total));
        let bar = stage_bar("denoiser", total, self.inner.step());
        say(
            &bar,
            &format!(
                "[denoiser] {} at step {} of {total} (session {})",
                if self.inner.step() > 0 {
                    "resuming"
                } else {
                    "starting"
                },
                self.inner.step(),
                self.state.sessions.len()
            ),
        );
        let log = CsvLog::open(
            log_path,
            "step,loss,vlb_per_token,aux_per_token,grad_norm,lr,skipped,seconds",
        )?;
        let start = Instant::now();
        let base_seconds = self.state.seconds;
        let mut last_checkpoint = Instant::now();
        let first = self.inner.step();
        let mut smoothed: Option<f64> = None;
        let tokens = self.prepare(data);
        while self.inner.step() < stop {
            let l = self.inner.train_step(&tokens)?;
            self.state.seconds = base_seconds + start.elapsed().as_secs_f64();
            if l.loss.is_finite() {
                smoothed = Some(smoothed.map_or(l.loss, |s| 0.98 * s + 0.02 * l.loss));
            }
            bar.set_position(l.step);
            bar.set_message(format!(
                "loss {:.3} vlb {:.4} aux {:.3}",
                smoothed.unwrap_or(f64::NAN),
                l.vlb_per_token,
                l.aux_per_token
            ));
            if l.step % 10 == 0 || l.skipped || l.step == stop {
                log.row(&format!(
                    "{},{},{},{},{},{},{},{:.1}",
                    l.step,
                    l.loss,
                    l.vlb_per_token,
                    l.aux_per_token,
                    l.grad_norm,
                    l.lr,
                    l.skipped,
                    self.state.seconds
                ))?;
            }
            if l.step % 100 == 0 || l.skipped {
                let per_step = start.elapsed().as_secs_f64() / (l.step - first) as f64;
                say(
                    &bar,
                    &format!(
                        "[denoiser] step {} loss {:.3} (smoothed {:.3}) vlb/token {:.4} aux/token {:.3} |g| {:.1} lr {:.2e}{} ({per_step:.2} s/step)",
                        l.step,
                        l.loss,
                        smoothed.unwrap_or(f64::NAN),
                        l.vlb_per_token,
                        l.aux_per_token,
                        l.grad_norm,
                        l.lr,
                        if l.skipped { " SKIPPED" } else { "" }
                    ),
                );
            }
            if last_checkpoint.elapsed().as_secs() >= self.config.checkpoint_seconds
                || self.inner.step() == stop
            {
                self.save_checkpoint(checkpoint)?;
                last_checkpoint = Instant::now();
            }
        }
        bar.finish_and_clear();
        let trained = self.inner.step() - first;
        Ok(if trained > 0 {
            start.elapsed().as_secs_f64() / trained as f64
        } else {
            0.0
        })
    }
}
