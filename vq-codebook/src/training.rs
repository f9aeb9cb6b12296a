//! Training a [`VqModel`] from scratch on a `candle_nn::VarMap`.
//!
//! The objective is the VQ-VAE one (van den Oord et al. 2017; diffusers' `VectorQuantizer`):
//! reconstruction loss (MSE or L1 in `[-1, 1]` pixel space) through the straight-through
//! estimator `z_q = z + sg[e − z]`, plus the quantiser terms of [`CodebookUpdate`]:
//!
//! * [`CodebookUpdate::Ema`] (**the default**): only the commitment term `β·mean((sg[e] − z)²)` is
//!   optimised; the codebook follows the EMA of its assigned encoder outputs
//!   ([`EmaCodebook`]). Chosen as default because the ITHQ VQ-VAE itself was
//!   trained this way (VQ-Diffusion's `EMAVectorQuantizer`, decay 0.99), because EMA codebooks
//!   do not depend on the optimiser's learning rate, and because on small data sets and short
//!   runs gradient-trained codebooks initialised at `±1/K` collapse onto a handful of codes.
//! * [`CodebookUpdate::Gradient`]: codebook term and commitment term are both optimised by AdamW,
//!   weighted exactly like diffusers' `VectorQuantizer` (`legacy = true`: β on the codebook term,
//!   the historical default; `legacy = false`: β on the commitment term).
//!
//! With either update, codes that no encoder output picked for `dead_code_window` steps are
//! restarted at random encoder outputs of the current batch, and (on a fresh start) the whole
//! codebook is initialised from the first batch's encoder outputs.
//!
//! Every op on the training path has a backward in candle: `vq-nn`'s layers leave their fused
//! inference kernels for candle's composite ops whenever a weight or an input tracks gradients
//! (GroupNorm, the convolution's pre-ops, the attention softmax), and the nearest upsampling is
//! a broadcast (see `upsample.rs`). The optimiser is `vq-nn`'s AdamW (candle-nn's update,
//! operation for operation) because its moments can be saved: a checkpoint holds them (under
//! `training.optimiser.`), so a resumed run continues exactly as the uninterrupted one would. A
//! checkpoint written before they were saved resumes with fresh moments.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use vq_nn::{AdamW, ParamsAdamW};

use crate::checkpoint::Checkpoint;
use crate::codebook_usage::{CodebookUsage, UsageTracker};
use crate::config::VqModelConfig;
use crate::ema_codebook::EmaCodebook;
use crate::error::{Error, Result};
use crate::init::{CODEBOOK_KEY, seeded_init};
use crate::reconstruction_loss::ReconstructionLoss;
use crate::vq_model::VqModel;

/// How the codebook is learned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CodebookUpdate {
    /// EMA updates of the code vectors (decay γ, Laplace smoothing ε); only the commitment loss
    /// reaches the encoder.
    Ema {
        /// EMA decay γ (VQ-Diffusion: 0.99).
        decay: f32,
        /// Laplace smoothing ε of the usage counts.
        epsilon: f32,
    },
    /// Gradient updates through the codebook loss.
    Gradient {
        /// diffusers' `legacy` flag: β weights the codebook term instead of the commitment term.
        legacy: bool,
    },
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total optimisation steps (a resumed run continues up to this count).
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// β of the quantiser loss.
    pub beta: f64,
    /// Codebook learning rule.
    pub codebook: CodebookUpdate,
    /// Restart codes unused for this many steps (`None`: never restart). Also the window for the
    /// dead-code count in the logs.
    pub dead_code_window: Option<u64>,
    /// Initialise the codebook from encoder outputs of the first batch on a fresh start.
    pub init_codebook_from_data: bool,
    /// Reconstruction loss.
    pub reconstruction: ReconstructionLoss,
    /// Call the log callback every this many steps (and at the last step).
    pub log_every: u64,
    /// Write a checkpoint every this many steps (and at the last step) when a path is set.
    pub checkpoint_every: u64,
    /// Seed of parameter initialisation, batch sampling and restarts.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 8,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            beta: 0.25,
            codebook: CodebookUpdate::Ema {
                decay: 0.99,
                epsilon: 1e-5,
            },
            dead_code_window: Some(50),
            init_codebook_from_data: true,
            reconstruction: ReconstructionLoss::Mse,
            log_every: 10,
            checkpoint_every: 200,
            seed: 0,
        }
    }
}

/// Losses and codebook statistics of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Steps completed after this one.
    pub step: u64,
    /// Total optimised loss.
    pub loss: f32,
    /// Reconstruction loss.
    pub reconstruction: f32,
    /// `mean((sg[e] − z)²)` (unweighted).
    pub commitment: f32,
    /// `mean((e − sg[z])²)` (unweighted).
    pub codebook: f32,
    /// Code usage within this batch.
    pub usage: CodebookUsage,
    /// Codes unused for `dead_code_window` steps (before this step's restarts).
    pub dead_codes: usize,
    /// Codes restarted at this step.
    pub restarted: usize,
}

/// Reconstruction quality and code usage on a set of images ([`evaluate`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// PSNR in dB of the clamped reconstructions, on the `[0, 1]` scale.
    pub psnr: f64,
    /// Mean squared error on the `[-1, 1]` scale.
    pub mse: f64,
    /// Code usage over all token positions.
    pub usage: CodebookUsage,
}

/// A VQ-VAE being trained: parameters, optimiser, codebook statistics.
pub struct Trainer {
    config: TrainConfig,
    model_config: VqModelConfig,
    varmap: VarMap,
    model: VqModel,
    optimiser: AdamW,
    codebook_var: Var,
    ema: Option<EmaCodebook>,
    tracker: UsageTracker,
    step: u64,
    device: Device,
}

/// Prefix of the AdamW moments and step in a checkpoint.
const OPTIMISER_PREFIX: &str = "training.optimiser.";

fn var_named(varmap: &VarMap, name: &str) -> Var {
    varmap
        .data()
        .lock()
        .expect("VarMap lock poisoned")
        .get(name)
        .cloned()
        .expect("the model registers this variable")
}

impl Trainer {
    /// A fresh model with seeded PyTorch-style initialisation.
    pub fn new(
        model_config: &VqModelConfig,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        if config.batch_size == 0 || config.log_every == 0 || config.checkpoint_every == 0 {
            return Err(Error::Training(
                "batch_size, log_every and checkpoint_every must be positive".into(),
            ));
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = VqModel::new(vb, model_config)?;
        seeded_init(&varmap, config.seed)?;
        let codebook_var = var_named(&varmap, CODEBOOK_KEY);
        let vars: Vec<(String, Var)> = {
            let data = varmap.data().lock().expect("VarMap lock poisoned");
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            names
                .into_iter()
                .filter(|n| {
                    !(n.as_str() == CODEBOOK_KEY
                        && matches!(config.codebook, CodebookUpdate::Ema { .. }))
                })
                .map(|n| (n.clone(), data[n].clone()))
                .collect()
        };
        let optimiser = AdamW::new(
            vars,
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
        )?;
        let ema = match config.codebook {
            CodebookUpdate::Ema { decay, epsilon } => {
                let values: Vec<f32> = codebook_var.as_tensor().flatten_all()?.to_vec1()?;
                Some(EmaCodebook::new(
                    &values,
                    model_config.embed_dim(),
                    decay,
                    epsilon,
                ))
            }
            CodebookUpdate::Gradient { .. } => None,
        };
        Ok(Self {
            config: config.clone(),
            model_config: model_config.clone(),
            tracker: UsageTracker::new(model_config.num_vq_embeddings, 0),
            varmap,
            model,
            optimiser,
            codebook_var,
            ema,
            step: 0,
            device: device.clone(),
        })
    }

    /// Resumes from `checkpoint` if the file exists, else starts fresh. The checkpoint's model
    /// config must equal `model_config`.
    pub fn resume_or_new(
        model_config: &VqModelConfig,
        config: &TrainConfig,
        checkpoint: &Path,
        device: &Device,
    ) -> Result<Self> {
        let mut trainer = Self::new(model_config, config, device)?;
        if !checkpoint.is_file() {
            return Ok(trainer);
        }
        let ckpt = Checkpoint::load(checkpoint)?;
        let mismatch = |message: String| Error::Checkpoint {
            path: checkpoint.to_path_buf(),
            message,
        };
        if &ckpt.model_config != model_config {
            return Err(mismatch(format!(
                "was trained with a different model config: {}",
                ckpt.model_config.to_json_string()
            )));
        }
        {
            let data = trainer.varmap.data().lock().expect("VarMap lock poisoned");
            for (name, var) in data.iter() {
                let saved = ckpt.tensor(name, checkpoint)?;
                if saved.dims() != var.dims() {
                    return Err(Error::Weights(vq_nn::Error::WeightShape {
                        file: checkpoint.to_path_buf(),
                        key: name.clone(),
                        expected: var.dims().to_vec(),
                        found: saved.dims().to_vec(),
                    }));
                }
                var.set(&saved.to_dtype(DType::F32)?.to_device(&trainer.device)?)?;
            }
        }
        let last_used: Vec<i64> = ckpt.tensor("training.last_used", checkpoint)?.to_vec1()?;
        trainer.tracker =
            UsageTracker::from_last_used(last_used.into_iter().map(|s| s.max(0) as u64).collect());
        if let (Some(ema), CodebookUpdate::Ema { decay, epsilon }) =
            (&mut trainer.ema, config.codebook)
        {
            let cluster_size = ckpt.tensor("training.ema_cluster_size", checkpoint)?;
            let embedding_sum = ckpt.tensor("training.ema_embedding_sum", checkpoint)?;
            *ema = EmaCodebook::from_state(
                cluster_size.to_vec1()?,
                embedding_sum.flatten_all()?.to_vec1()?,
                model_config.embed_dim(),
                decay,
                epsilon,
            );
        }
        let optimiser_state: std::collections::HashMap<String, Tensor> = ckpt
            .tensors
            .iter()
            .filter_map(|(k, t)| {
                k.strip_prefix(OPTIMISER_PREFIX)
                    .map(|name| (name.to_string(), t.to_device(&trainer.device)))
            })
            .map(|(k, t)| t.map(|t| (k, t)))
            .collect::<candle_core::Result<_>>()?;
        if !optimiser_state.is_empty() {
            trainer
                .optimiser
                .load_state(&optimiser_state)
                .map_err(|e| mismatch(e.to_string()))?;
        }
        trainer.step = ckpt.step;
        Ok(trainer)
    }

    /// The model (shares its parameters with the trainer).
    pub fn model(&self) -> &VqModel {
        &self.model
    }

    /// The parameters.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Writes a checkpoint (atomically) to `path`.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let k = self.model_config.num_vq_embeddings;
        let dev = Device::Cpu; // checkpoints are written from host copies
        let mut tensors = std::collections::HashMap::new();
        for (name, var) in self
            .varmap
            .data()
            .lock()
            .expect("VarMap lock poisoned")
            .iter()
        {
            tensors.insert(name.clone(), var.as_tensor().to_device(&dev)?);
        }
        for (name, t) in self.optimiser.state()? {
            tensors.insert(format!("{OPTIMISER_PREFIX}{name}"), t.to_device(&dev)?);
        }
        let last_used: Vec<i64> = self.tracker.last_used().iter().map(|&s| s as i64).collect();
        tensors.insert(
            "training.last_used".into(),
            Tensor::from_vec(last_used, k, &dev)?,
        );
        if let Some(ema) = &self.ema {
            tensors.insert(
                "training.ema_cluster_size".into(),
                Tensor::from_vec(ema.cluster_size().to_vec(), k, &dev)?,
            );
            tensors.insert(
                "training.ema_embedding_sum".into(),
                Tensor::from_vec(
                    ema.embedding_sum().to_vec(),
                    (k, self.model_config.embed_dim()),
                    &dev,
                )?,
            );
        }
        Checkpoint {
            step: self.step,
            model_config: self.model_config.clone(),
            train_config_json: serde_json::to_string(&self.config).expect("config serialises"),
            tensors,
        }
        .save(path)
    }

    /// Writes the model as a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`).
    pub fn export_diffusers(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, self.model_config.to_json_string()).map_err(|source| {
            Error::Io {
                path: config_path.clone(),
                source,
            }
        })?;
        let weights = dir.join("diffusion_pytorch_model.safetensors");
        let tmp = crate::checkpoint::temp_path(&weights);
        self.varmap.save(&tmp)?;
        std::fs::rename(&tmp, &weights).map_err(|source| Error::Io {
            path: weights,
            source,
        })
    }

    fn step_rng(&self, salt: u64) -> StdRng {
        StdRng::seed_from_u64(
            self.config
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(self.step.wrapping_mul(0xD1B5_4A32_D192_ED03))
                ^ salt,
        )
    }

    /// Restarts `codes` at random rows of `latents` (`N·D`).
    fn restart_codes(&mut self, codes: &[usize], latents: &[f32], rng: &mut StdRng) -> Result<()> {
        if codes.is_empty() {
            return Ok(());
        }
        let d = self.model_config.embed_dim();
        let n = latents.len() / d;
        let rows: Vec<usize> = if codes.len() <= n {
            sample(rng, n, codes.len()).into_vec()
        } else {
            (0..codes.len()).map(|_| rng.random_range(0..n)).collect()
        };
        let mut book: Vec<f32> = self.codebook_var.as_tensor().flatten_all()?.to_vec1()?;
        for (&code, &row) in codes.iter().zip(&rows) {
            let vector = &latents[row * d..(row + 1) * d];
            book[code * d..(code + 1) * d].copy_from_slice(vector);
            if let Some(ema) = &mut self.ema {
                ema.restart(code, vector);
            }
            self.tracker.touch(code, self.step);
        }
        let dims = self.codebook_var.dims().to_vec();
        self.codebook_var
            .set(&Tensor::from_vec(book, dims.as_slice(), &self.device)?)?;
        Ok(())
    }

    /// One optimisation step on `images` `(B, C, H, W)` in `[-1, 1]`.
    pub fn train_step(&mut self, images: &Tensor) -> Result<StepLog> {
        let d = self.model_config.embed_dim();
        let mut rng = self.step_rng(0x5EED);
        if self.step == 0 && self.config.init_codebook_from_data {
            let latents = flat_latents(&self.model.encode_latents(images)?)?;
            let all: Vec<usize> = (0..self.model_config.num_vq_embeddings).collect();
            self.restart_codes(&all, &latents, &mut rng)?;
        }
        let fwd = self.model.forward_train(images)?;
        let reconstruction = self
            .config
            .reconstruction
            .loss(&fwd.reconstruction, images)?;
        let q = &fwd.quantised;
        let vq_loss = match self.config.codebook {
            CodebookUpdate::Ema { .. } => (&q.commitment_loss * self.config.beta)?,
            CodebookUpdate::Gradient { legacy } => q.loss(self.config.beta, legacy)?,
        };
        let loss = (&reconstruction + vq_loss)?;
        let grads = loss.backward()?;
        self.optimiser.step(&grads)?;

        let indices: Vec<u32> = q.indices.flatten_all()?.to_vec1()?;
        let latents = flat_latents(&fwd.latents)?;
        if let Some(ema) = &mut self.ema {
            let book = ema.update(&latents, &indices);
            let dims = self.codebook_var.dims().to_vec();
            self.codebook_var
                .set(&Tensor::from_vec(book, dims.as_slice(), &self.device)?)?;
        }
        self.step += 1;
        self.tracker.record(&indices, self.step);
        let (dead_codes, restarted) = match self.config.dead_code_window {
            Some(window) => {
                let dead = self.tracker.dead_codes(self.step, window);
                self.restart_codes(&dead, &latents, &mut rng)?;
                (dead.len(), dead.len())
            }
            None => (0, 0),
        };
        debug_assert_eq!(latents.len(), indices.len() * d);
        Ok(StepLog {
            step: self.step,
            loss: loss.to_scalar()?,
            reconstruction: reconstruction.to_scalar()?,
            commitment: q.commitment_loss.to_scalar()?,
            codebook: q.codebook_loss.to_scalar()?,
            usage: CodebookUsage::from_indices(&indices, self.model_config.num_vq_embeddings),
            dead_codes,
            restarted,
        })
    }

    /// A random batch of `dataset` `(N, C, H, W)` for the current step (seeded by seed and step,
    /// so a resumed run draws the same batches).
    pub fn sample_batch(&self, dataset: &Tensor) -> Result<Tensor> {
        let n = dataset.dim(0)?;
        if n == 0 {
            return Err(Error::Training("empty dataset".into()));
        }
        let mut rng = self.step_rng(0xBA7C);
        let ids: Vec<u32> = if self.config.batch_size <= n {
            sample(&mut rng, n, self.config.batch_size)
                .into_iter()
                .map(|i| i as u32)
                .collect()
        } else {
            (0..self.config.batch_size)
                .map(|_| rng.random_range(0..n) as u32)
                .collect()
        };
        let ids = Tensor::from_vec(ids, self.config.batch_size, dataset.device())?;
        Ok(dataset.index_select(&ids, 0)?)
    }

    /// Trains until `config.steps`, calling `on_log` every `log_every` steps and writing a
    /// checkpoint to `checkpoint` (when given) every `checkpoint_every` steps and at the end.
    pub fn fit(
        &mut self,
        dataset: &Tensor,
        checkpoint: Option<&Path>,
        mut on_log: impl FnMut(&StepLog),
    ) -> Result<Vec<StepLog>> {
        self.model.check_images(dataset)?;
        let mut logs = Vec::new();
        while self.step < self.config.steps {
            let batch = self.sample_batch(dataset)?;
            let log = self.train_step(&batch)?;
            let last = self.step == self.config.steps;
            if self.step.is_multiple_of(self.config.log_every) || last {
                on_log(&log);
            }
            if let Some(path) = checkpoint
                && (self.step.is_multiple_of(self.config.checkpoint_every) || last)
            {
                self.save_checkpoint(path)?;
            }
            logs.push(log);
        }
        Ok(logs)
    }
}

/// `(B, D, h, w)` latents → `B·h·w` rows of `D` values (NHWC order, like the indices).
fn flat_latents(latents: &Tensor) -> Result<Vec<f32>> {
    Ok(latents
        .detach()
        .permute((0, 2, 3, 1))?
        .flatten_all()?
        .to_vec1()?)
}

/// Reconstruction PSNR and code usage of `model` on `images` `(N, C, H, W)` in `[-1, 1]`,
/// `batch_size` images at a time.
pub fn evaluate(model: &VqModel, images: &Tensor, batch_size: usize) -> Result<EvalReport> {
    let n = images.dim(0)?;
    let mut sq_err = 0f64;
    let mut count = 0usize;
    let mut all_ids = Vec::new();
    for start in (0..n).step_by(batch_size.max(1)) {
        let batch = images.narrow(0, start, batch_size.min(n - start))?;
        let tokens = model.encode(&batch)?;
        let recon = model.decode_tokens(&tokens)?.clamp(-1f32, 1f32)?;
        let err = (recon - &batch)?.sqr()?.sum_all()?.to_scalar::<f32>()?;
        sq_err += err as f64;
        count += batch.elem_count();
        all_ids.extend(tokens.flatten_all()?.to_vec1::<u32>()?);
    }
    let mse = sq_err / count.max(1) as f64;
    Ok(EvalReport {
        psnr: 10.0 * (4.0 / mse).log10(),
        mse,
        usage: CodebookUsage::from_indices(&all_ids, model.config().num_vq_embeddings),
    })
}

/// Path of the checkpoint file inside a run directory.
pub fn checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint.safetensors")
}
