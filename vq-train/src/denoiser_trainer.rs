//! Training a denoiser with the VQ-Diffusion objective on any [`TokenDataset`] — token grids
//! with captions (the text encoder and the null embedding train too), with class labels, or
//! unconditional — for any [`TrainableDenoiser`]: the variational bound plus the auxiliary x₀
//! loss (VQ-Diffusion eq. 5–6, `discrete_diffusion::training_loss`), the mask-and-replace
//! forward chain, importance-sampled timesteps (Improved DDPM's loss-history sampler),
//! condition dropout to the learned null condition (for classifier-free guidance), AdamW under
//! a warm-up + cosine schedule, global gradient clipping, and an optional EMA.
//!
//! Every random choice of step `s` (batch, dropout, timesteps, forward noise) comes from a
//! generator seeded by `(seed, s)`, and a checkpoint holds the weights, the AdamW moments, the
//! EMA, the timestep sampler's history and the step: a resumed run continues exactly as the
//! uninterrupted one would (tested). A checkpoint is a folder written as a whole and swapped
//! into place, so a run killed while writing one resumes from the previous.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use discrete_diffusion::{
    LossConfig, MaskAndReplace, SeededNoise, TimestepSampler, TimestepSampling, Transition,
    training_loss,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use crate::Rank;
use crate::error::io;
use crate::{
    Ema, Error, GroupedAdamW, LrSchedule, ParamGroup, ParamsAdamW, Result, TextConditionedModel,
    TokenDataset, TrainableDenoiser, clip_grad_norm,
};

/// Every hyper-parameter of a denoiser run (serialised with the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiserTrainingConfig {
    /// Optimiser steps in all.
    pub steps: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Warm-up steps.
    pub warmup: u64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub final_lr_fraction: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm limit.
    pub grad_clip: Option<f64>,
    /// Probability of replacing an example's condition (caption or class label) by the null
    /// condition (needs a learned null).
    pub caption_dropout: f64,
    /// Keep the text encoder fixed.
    pub freeze_text_encoder: bool,
    /// EMA decay of the weights (none: no EMA).
    pub ema_decay: Option<f64>,
    /// Timestep sampling.
    pub timesteps: TimestepSampling,
    /// The loss weights.
    pub loss: LossConfig,
    /// The run's seed.
    pub seed: u64,
}

impl Default for DenoiserTrainingConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 16,
            learning_rate: 1e-4,
            warmup: 50,
            final_lr_fraction: 0.1,
            weight_decay: 0.01,
            grad_clip: Some(1.0),
            caption_dropout: 0.1,
            freeze_text_encoder: false,
            ema_decay: None,
            timesteps: TimestepSampling::Importance,
            loss: LossConfig::default(),
            seed: 0,
        }
    }
}

impl DenoiserTrainingConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidSetting(m));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!("learning_rate {} must be > 0", self.learning_rate));
        }
        if !(0.0..1.0).contains(&self.caption_dropout) {
            return bad(format!(
                "caption_dropout {} must be in [0, 1)",
                self.caption_dropout
            ));
        }
        if !(0.0..=1.0).contains(&self.final_lr_fraction) {
            return bad(format!(
                "final_lr_fraction {} must be in [0, 1]",
                self.final_lr_fraction
            ));
        }
        Ok(())
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLog {
    /// Steps done after this one.
    pub step: u64,
    /// The loss.
    pub loss: f64,
    /// Mean VLB term per token (nats).
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

/// The JSON part of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    sampler: TimestepSampler,
    ema_updates: u64,
    config: DenoiserTrainingConfig,
}

/// A denoiser training run (text-to-image by default; any [`TrainableDenoiser`]).
pub struct DenoiserTrainer<M: TrainableDenoiser = TextConditionedModel> {
    model: M,
    chain: MaskAndReplace,
    config: DenoiserTrainingConfig,
    optimiser: GroupedAdamW,
    ema: Option<Ema>,
    sampler: TimestepSampler,
    step: u64,
    rank: Rank,
    step_seed: fn(u64, u64) -> u64,
}

/// The default seed of step `step`'s generator in a run seeded `seed`.
pub fn default_step_seed(seed: u64, step: u64) -> u64 {
    seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<M: TrainableDenoiser> DenoiserTrainer<M> {
    /// A run from step 0.
    pub fn new(model: M, chain: MaskAndReplace, config: DenoiserTrainingConfig) -> Result<Self> {
        config.validate()?;
        if config.caption_dropout > 0.0 && !model.has_learned_null() {
            return Err(Error::InvalidSetting(format!(
                "caption_dropout {} needs a model with a learned null condition (this one has \
                 none: set it to 0)",
                config.caption_dropout
            )));
        }
        if config.freeze_text_encoder && !model.has_text_encoder() {
            return Err(Error::InvalidSetting(
                "freeze_text_encoder: this model has no text encoder".into(),
            ));
        }
        let optimiser = GroupedAdamW::new(
            &model.trainable(config.freeze_text_encoder),
            &[ParamGroup::all(config.weight_decay)],
            &ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
        )?;
        let ema = config
            .ema_decay
            .map(|d| Ema::new(model.varmap(), d))
            .transpose()?;
        let sampler = TimestepSampler::new(config.timesteps, chain.num_timesteps());
        Ok(Self {
            model,
            chain,
            config,
            optimiser,
            ema,
            sampler,
            step: 0,
            rank: Rank::default(),
            step_seed: default_step_seed,
        })
    }

    /// AdamW with these parameter groups (each variable in the first group that selects it)
    /// instead of one group of everything at the configured weight decay. Call before
    /// training.
    pub fn with_param_groups(mut self, groups: &[ParamGroup]) -> Result<Self> {
        self.optimiser = GroupedAdamW::new(
            &self.model.trainable(self.config.freeze_text_encoder),
            groups,
            &ParamsAdamW {
                lr: self.config.learning_rate,
                weight_decay: self.config.weight_decay,
                ..Default::default()
            },
        )?;
        Ok(self)
    }

    /// Seeds step `s`'s generator with `f(seed, s)` (default [`default_step_seed`]).
    pub fn with_step_seed(mut self, f: fn(u64, u64) -> u64) -> Self {
        self.step_seed = f;
        self
    }

    /// Trains as `rank` of a data-parallel world: batches come only from this rank's shard of
    /// the data ([`Rank::shard`]) and the randomness from its seed ([`Rank::seed`]). A world of
    /// one is the plain run, bit for bit. (Averaging the ranks' gradients is not implemented:
    /// see docs/scaling.md.)
    pub fn with_rank(mut self, rank: Rank) -> Self {
        self.rank = rank;
        self
    }

    /// This trainer's rank.
    pub fn rank(&self) -> Rank {
        self.rank
    }

    /// Steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The EMA, when configured.
    pub fn ema(&self) -> Option<&Ema> {
        self.ema.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &DenoiserTrainingConfig {
        &self.config
    }

    fn schedule(&self) -> LrSchedule {
        LrSchedule {
            peak: self.config.learning_rate,
            final_fraction: self.config.final_lr_fraction,
            warmup: self.config.warmup,
            resume_warmup: 0,
            total: self.config.steps,
        }
    }

    /// One optimisation step on a batch drawn from `data`.
    pub fn train_step<D>(&mut self, data: &D) -> Result<StepLog>
    where
        D: TokenDataset<Condition = M::Condition>,
    {
        let m = data.len();
        let grids = data.tokens().dim(0)?;
        if m == 0 || grids != m {
            return Err(Error::InvalidSetting(format!(
                "{grids} token grids for {m} conditions"
            )));
        }
        let c = &self.config;
        let seed = if self.rank.world == 1 {
            c.seed
        } else {
            self.rank.seed(c.seed)
        };
        let mut rng = ChaCha12Rng::seed_from_u64((self.step_seed)(seed, self.step));
        let b = c.batch_size;
        let device = data.tokens().device().clone();
        let shard: Vec<usize> = self.rank.shard(m).collect();
        if shard.is_empty() {
            return Err(Error::InvalidSetting(format!(
                "rank {} of {} has no data: {m} examples for {} ranks",
                self.rank.rank, self.rank.world, self.rank.world
            )));
        }
        let idx: Vec<u32> = (0..b)
            .map(|_| shard[rng.random_range(0..shard.len())] as u32)
            .collect();
        let x0 = data
            .tokens()
            .index_select(&Tensor::from_vec(idx.clone(), b, &device)?, 0)?;
        let conditions: Vec<M::Condition> = idx
            .iter()
            .map(|&i| data.condition(i as usize, &mut rng))
            .collect();
        let keep: Vec<bool> = (0..b)
            .map(|_| rng.random::<f64>() >= c.caption_dropout)
            .collect();
        let (ts, pt) = self.sampler.sample(b, &mut rng);
        let mut noise = SeededNoise::new(rng.random());
        let x_t = self.chain.q_sample(&x0, ts.clone(), &mut noise)?;
        let log_p = self
            .model
            .training_log_p_x0(&x_t, &ts, &conditions, &keep)?;
        let loss = training_loss(&self.chain, &log_p, &x0, &x_t, &ts, &pt, &c.loss)?;
        let value = loss.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let lr = self.schedule().rate(self.step, 0);
        let mut grad_norm = f64::NAN;
        let mut skipped = !value.is_finite();
        if !skipped {
            let mut grads = loss.loss.backward()?;
            let vars: Vec<candle_core::Var> = self
                .model
                .trainable(c.freeze_text_encoder)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            grad_norm = clip_grad_norm(&mut grads, &vars, c.grad_clip)?;
            skipped = !grad_norm.is_finite();
            if !skipped {
                self.optimiser.step(&grads, lr)?;
                self.sampler.update(&ts, &loss.vlb_per_sample)?;
                if let Some(ema) = &mut self.ema {
                    ema.update(self.model.varmap())?;
                }
            }
        }
        self.step += 1;
        Ok(StepLog {
            step: self.step,
            loss: value,
            vlb_per_token: loss.vlb_per_token,
            aux_per_token: loss.aux_per_token,
            grad_norm,
            lr,
            skipped,
        })
    }

    /// Writes a checkpoint folder `dir` (weights, optimiser moments, EMA, state) as a whole:
    /// into `dir.tmp`, then swapped in for the previous one.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let tmp = sibling(dir, "tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        self.model
            .varmap()
            .save(tmp.join("model.safetensors"))
            .map_err(|e| Error::Data {
                path: tmp.join("model.safetensors"),
                reason: e.to_string(),
            })?;
        self.optimiser.save(&tmp)?;
        if let Some(ema) = &self.ema {
            crate::save_tensors_atomic(&tmp.join("ema.safetensors"), &ema.weights())?;
        }
        let state = TrainerState {
            step: self.step,
            sampler: self.sampler.clone(),
            ema_updates: self.ema.as_ref().map_or(0, Ema::updates),
            config: self.config.clone(),
        };
        crate::write_json_atomic(&tmp.join("state.json"), &state)?;
        let old = sibling(dir, "old");
        let _ = std::fs::remove_dir_all(&old);
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Restores a checkpoint written by [`DenoiserTrainer::save_checkpoint`] (or the previous
    /// one, when a run was killed while swapping them). Returns whether one was found. The
    /// checkpoint's configuration must be this run's.
    pub fn resume(&mut self, dir: &Path) -> Result<bool> {
        let dir = if dir.join("state.json").is_file() {
            dir.to_path_buf()
        } else if sibling(dir, "old").join("state.json").is_file() {
            sibling(dir, "old")
        } else {
            return Ok(false);
        };
        let state_path = dir.join("state.json");
        let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
        let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::Data {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
        // Every setting but the length must agree (a run may be extended: the cosine then
        // stretches to the new length from the step reached).
        let same = DenoiserTrainingConfig {
            steps: self.config.steps,
            ..state.config.clone()
        };
        if same != self.config {
            return Err(Error::Data {
                path: state_path,
                reason: "the checkpoint was written with other settings; resume with the same \
                         configuration (only `steps` may change) or start a new run folder"
                    .into(),
            });
        }
        let weights = dir.join("model.safetensors");
        // A VarMap shares its variables with its clones: loading into one sets the model's.
        self.model
            .varmap()
            .clone()
            .load(&weights)
            .map_err(|e| Error::Data {
                path: weights.clone(),
                reason: e.to_string(),
            })?;
        self.optimiser.load(&dir)?;
        if let Some(ema) = &mut self.ema {
            let path = dir.join("ema.safetensors");
            let saved =
                candle_core::safetensors::load(&path, &candle_core::Device::Cpu).map_err(|e| {
                    Error::Data {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
            ema.load_weights(&saved, state.ema_updates)?;
        }
        self.sampler = state.sampler;
        self.step = state.step;
        Ok(true)
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}
