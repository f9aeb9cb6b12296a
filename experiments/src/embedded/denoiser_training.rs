//! Stage 3: joint training of the text encoder, the denoiser and the learned null embedding
//! with the `discrete-diffusion` objective — VLB + auxiliary x₀ loss (VQ-Diffusion's weights),
//! mask-and-replace forward chain, importance-sampled timesteps, caption dropout to the learned
//! null embedding — under AdamW (two groups: weight matrices with decay; embeddings, norms and
//! biases without), warm-up + cosine learning rate and global gradient-norm clipping.
//!
//! Every random choice of step `s` (batch, captions, dropout, timesteps, forward noise) comes
//! from a `StdRng` seeded by `(seed, s)`, so a resumed run draws exactly what an uninterrupted
//! one would. Checkpoints (one safetensors file, written atomically) hold every variable and, as
//! a `u8` tensor, the JSON [`TrainerState`]: step, timestep-sampler history, session starts.
//! AdamW moments are not in it (candle keeps them private); a resume restarts them under a short
//! learning-rate re-warm-up.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use clip_text::ClipTokenizer;
use discrete_diffusion::Timesteps;
use discrete_diffusion::{
    MaskAndReplace, SeededNoise, TimestepSampler, TimestepSampling, Transition, training_loss,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::config::EmbeddedConfig;
use super::joint_model::{JointModel, new_joint_model};
use super::optimiser_groups::OptimiserGroups;
use super::progress::{CsvLog, say, stage_bar};
use super::token_cache::TokenizedData;
use super::training_captions::training_caption;
use vq_train::LrSchedule;
use vq_train::clip_grad_norm;
use vq_train::save_tensors_atomic;

/// Checkpoint key of the JSON state.
const STATE_KEY: &str = "training.state_json";

/// Everything besides the weights that a resumed run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps completed.
    pub step: u64,
    /// The importance sampler's loss history and visit counts.
    pub sampler: TimestepSampler,
    /// Step at which each training session started (resumes after the first).
    pub sessions: Vec<u64>,
    /// Training wall time over all sessions (s).
    pub seconds: f64,
    /// The recipe (a resume must use the same).
    pub config: EmbeddedConfig,
}

/// One step's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct StepLog {
    /// Steps completed after this one.
    pub step: u64,
    /// The optimised loss (`(L_t + w λ L_aux) / p(t)`, mean over tokens).
    pub loss: f64,
    /// Mean `L_t` per token (nats).
    pub vlb_per_token: f64,
    /// Mean auxiliary term per token (nats).
    pub aux_per_token: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Whether the update was skipped (non-finite loss or gradient).
    pub skipped: bool,
}

/// The joint trainer.
pub struct DenoiserTrainer {
    config: EmbeddedConfig,
    model: JointModel,
    chain: MaskAndReplace,
    tokenizer: ClipTokenizer,
    optimisers: OptimiserGroups,
    vars: Vec<Var>,
    schedule: LrSchedule,
    state: TrainerState,
    session_start: u64,
}

/// The CLIP BPE tokenizer shipped in the repository (`fixtures/tokenizer/`).
pub fn repository_tokenizer_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokenizer")
}

pub(crate) fn step_rng(seed: u64, step: u64, salt: u64) -> StdRng {
    StdRng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(step.wrapping_mul(0xD1B5_4A32_D192_ED03))
            ^ salt,
    )
}

impl DenoiserTrainer {
    /// A fresh trainer (starting from the `initial` tensors where given, e.g. a pre-trained
    /// text encoder), or one resumed from `checkpoint` when that file exists.
    pub fn resume_or_new(
        config: &EmbeddedConfig,
        checkpoint: &Path,
        initial: Option<&HashMap<String, Tensor>>,
    ) -> anyhow::Result<Self> {
        let model = new_joint_model(config)?;
        if let Some(tensors) = initial {
            model.load_part(tensors)?;
        }
        let big_t = config.chain.num_timesteps;
        let mut state = TrainerState {
            step: 0,
            sampler: TimestepSampler::new(TimestepSampling::Importance, big_t),
            sessions: Vec::new(),
            seconds: 0.0,
            config: config.clone(),
        };
        if checkpoint.is_file() {
            let mut tensors = candle_core::safetensors::load(checkpoint, &Device::Cpu)?;
            let json = tensors
                .remove(STATE_KEY)
                .ok_or_else(|| anyhow::anyhow!("{}: no training state", checkpoint.display()))?;
            let saved: TrainerState = serde_json::from_slice(&json.to_vec1::<u8>()?)?;
            anyhow::ensure!(
                &saved.config == config,
                "{} was written by a run with a different configuration; use another run folder",
                checkpoint.display()
            );
            model.load_tensors(&tensors)?;
            state = saved;
        }
        let session_start = state.step;
        state.sessions.push(session_start);
        let named = model.named_vars();
        let optimisers = OptimiserGroups::new(&named, &config.denoiser)?;
        let d = &config.denoiser;
        Ok(Self {
            chain: config.chain.chain(config.codebook())?,
            tokenizer: ClipTokenizer::from_pretrained(&repository_tokenizer_dir())?,
            vars: named.into_iter().map(|(_, v)| v).collect(),
            schedule: LrSchedule {
                peak: d.learning_rate,
                final_fraction: d.final_lr_fraction,
                warmup: d.warmup_steps,
                resume_warmup: d.resume_warmup_steps,
                total: d.steps,
            },
            config: config.clone(),
            model,
            optimisers,
            state,
            session_start,
        })
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.state.step
    }

    /// The state (sampler history, sessions).
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// The model.
    pub fn model(&self) -> &JointModel {
        &self.model
    }

    /// One optimisation step on a batch drawn from `data`.
    pub fn train_step(&mut self, data: &TokenizedData) -> anyhow::Result<StepLog> {
        let d = &self.config.denoiser;
        let step = self.state.step;
        let mut rng = step_rng(self.config.seed, step, 0xDE_0153);
        let b = d.batch_size;
        let n = data.scenes.len();
        let idx: Vec<u32> = (0..b).map(|_| rng.random_range(0..n) as u32).collect();
        let x0 = data
            .tokens
            .index_select(&Tensor::from_vec(idx.clone(), b, &Device::Cpu)?, 0)?;
        let captions: Vec<String> = idx
            .iter()
            .map(|&i| training_caption(&data.scenes[i as usize], d.partial_caption_rate, &mut rng))
            .collect();
        let keep: Vec<bool> = (0..b)
            .map(|_| rng.random::<f64>() >= d.caption_dropout)
            .collect();
        let (ts, pt) = self.state.sampler.sample(b, &mut rng);
        let mut noise = SeededNoise::new(rng.random());
        let x_t = self.chain.q_sample(&x0, ts.clone(), &mut noise)?;

        let ids = self
            .tokenizer
            .encode_batch(&captions)?
            .to_tensor(&Device::Cpu)?;
        let states = self.model.condition(&ids, &keep)?;
        let context = self.model.transformer.uncached_context(&states)?;
        let log_p = self.model.transformer.forward_t(
            &x_t,
            Timesteps::PerSample(ts.clone()),
            Some(&context),
            true,
        )?;
        let loss = training_loss(&self.chain, &log_p, &x0, &x_t, &ts, &pt, &d.loss)?;
        let value = loss.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let lr = self.schedule.rate(step, self.session_start);
        let mut grad_norm = f64::NAN;
        let mut skipped = !value.is_finite();
        if !skipped {
            let mut grads = loss.loss.backward()?;
            grad_norm = clip_grad_norm(&mut grads, &self.vars, d.grad_clip)?;
            skipped = !grad_norm.is_finite();
            if !skipped {
                self.optimisers.step(&grads, lr)?;
                self.state.sampler.update(&ts, &loss.vlb_per_sample)?;
            }
        }
        self.state.step += 1;
        Ok(StepLog {
            step: self.state.step,
            loss: value,
            vlb_per_token: loss.vlb_per_token,
            aux_per_token: loss.aux_per_token,
            grad_norm,
            lr,
            skipped,
        })
    }

    /// Writes every variable and the state to `path` atomically.
    pub fn save_checkpoint(&self, path: &Path) -> anyhow::Result<()> {
        let mut tensors: HashMap<String, Tensor> = self.model.tensors()?;
        let json = serde_json::to_vec(&self.state)?;
        let len = json.len();
        tensors.insert(
            STATE_KEY.to_string(),
            Tensor::from_vec(json, len, &Device::Cpu)?,
        );
        Ok(save_tensors_atomic(path, &tensors)?)
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
        let stop = max_steps.map_or(total, |m| (self.state.step + m).min(total));
        let bar = stage_bar("denoiser", total, self.state.step);
        say(
            &bar,
            &format!(
                "[denoiser] {} at step {} of {total} (session {})",
                if self.state.step > 0 {
                    "resuming"
                } else {
                    "starting"
                },
                self.state.step,
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
        let first = self.state.step;
        let mut smoothed: Option<f64> = None;
        while self.state.step < stop {
            let l = self.train_step(data)?;
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
                || self.state.step == stop
            {
                self.save_checkpoint(checkpoint)?;
                last_checkpoint = Instant::now();
            }
        }
        bar.finish_and_clear();
        let trained = self.state.step - first;
        Ok(if trained > 0 {
            start.elapsed().as_secs_f64() / trained as f64
        } else {
            0.0
        })
    }
}
