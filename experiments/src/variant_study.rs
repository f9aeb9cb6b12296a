//! Train-and-score studies (mask-and-replace ablation, reparameterisation): several denoisers
//! trained with the same budget on the embedded model's VQ-VAE tokens, each differing in one
//! setting, exported to their own diffusers folders (resumable: a finished variant is only
//! re-scored), and scored by held-out ELBO (bits per token), oracle faithfulness, our FID and
//! wall time per image.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{Device, Tensor};
use discrete_diffusion::{Parameterisation, SeededNoise};
use serde::Serialize;
use shape_world::{FeatureNet, SceneSpec, Split, World, images_to_tensor};
use vq_codebook::VqModel;
use vq_pipeline::{LoadOptions, SamplerChoice, VqDiffusionPipeline};

use crate::embedded::EmbeddedConfig;
use crate::embedded::denoiser_training::DenoiserTrainer;
use crate::embedded::diffusers_export::export_pipeline;
use crate::embedded::progress::CsvLog;
use crate::embedded::run::last_losses;
use crate::embedded::text_pretraining::initial_text_encoder;
use crate::embedded::token_cache::{TokenizedData, load_or_encode};
use crate::embedded::vq_stage::{run_vq_stage, vq_export_dir};
use crate::result_table::ResultTable;
use crate::sampler_study::{PromptSet, score_variant};

/// One trained variant's scores.
#[derive(Debug, Clone, Serialize)]
pub struct VariantRow {
    /// Name (also its folder under `variants/`).
    pub variant: String,
    /// The swept value (for plots).
    pub x: f64,
    /// Held-out negative ELBO, bits per token.
    pub elbo_bits_per_token: f64,
    /// All-correct rate on one-object test prompts.
    pub single_all_correct: f64,
    /// All-correct rate on two-object test prompts.
    pub pair_all_correct: f64,
    /// Our FID against the real images of the same prompts.
    pub fid: f64,
    /// Wall time per image (s).
    pub seconds_per_image: f64,
    /// Mean training loss over the last logged steps.
    pub final_loss: Option<f64>,
}

/// Shared data of a study: tokens to train on, held-out tokens for the ELBO, prompts to score.
pub struct VariantStudy {
    run_dir: PathBuf,
    /// Training tokens and scenes.
    pub data: TokenizedData,
    /// Captions of the held-out ELBO images.
    pub elbo_prompts: Vec<String>,
    /// Held-out token grids `(E, N)`.
    pub elbo_tokens: Tensor,
    /// Test prompts scored for faithfulness and FID.
    pub set: PromptSet,
    /// Our FID's feature network.
    pub net: FeatureNet,
}

impl VariantStudy {
    /// Trains (or reuses) the VQ-VAE and token cache of `base` in `run_dir`, encodes
    /// `elbo_images` validation images, and takes `prompts` one- and two-object test prompts.
    pub fn prepare(
        base: &EmbeddedConfig,
        run_dir: &Path,
        elbo_images: usize,
        prompts: usize,
    ) -> anyhow::Result<Self> {
        run_vq_stage(base, run_dir)?;
        let vq = VqModel::from_pretrained(
            vq_export_dir(run_dir),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )?;
        let world = World::default();
        let data = load_or_encode(
            &run_dir.join("tokens.safetensors"),
            &vq,
            &vq_export_dir(run_dir).join("diffusion_pytorch_model.safetensors"),
            &world,
            base.denoiser.examples,
        )?;
        let held_out = world.examples(Split::Validation, elbo_images);
        let elbo_prompts = held_out
            .iter()
            .enumerate()
            .map(|(i, e)| SceneSpec::from(&e.scene).caption(i))
            .collect();
        let images: Vec<_> = held_out.iter().map(|e| e.image.clone()).collect();
        let elbo_tokens = vq
            .encode(&images_to_tensor(&images, &Device::Cpu)?)?
            .flatten_from(1)?;
        Ok(Self {
            run_dir: run_dir.to_path_buf(),
            data,
            elbo_prompts,
            elbo_tokens,
            set: PromptSet::new(Split::Test, prompts, prompts),
            net: FeatureNet::shipped()?,
        })
    }

    /// The folder of a `kind` of model trained with `config` on this run's tokens:
    /// `run_dir/variants/<kind>-<config hash>/`, so studies share identical variants.
    pub fn variant_dir(&self, kind: &str, config: &EmbeddedConfig) -> anyhow::Result<PathBuf> {
        Ok(self
            .run_dir
            .join("variants")
            .join(format!("{kind}-{:016x}", config_hash(config)?)))
    }

    /// The training curve of a variant trained with `config`: column `column` of its
    /// `log.csv` against the step, averaged over windows of `window` logged rows (the logs are
    /// noisy: each row is one batch at random timesteps).
    pub fn learning_curve(
        &self,
        config: &EmbeddedConfig,
        column: &str,
        window: usize,
    ) -> anyhow::Result<Vec<(f64, f64)>> {
        let log = self.variant_dir("diffusion", config)?.join("log.csv");
        let rows = CsvLog::read_column(&log, column)?;
        Ok(rows
            .chunks(window.max(1))
            .map(|c| {
                let n = c.len() as f64;
                (
                    c.last().map_or(0.0, |r| r.0),
                    c.iter().map(|r| r.1).sum::<f64>() / n,
                )
            })
            .collect())
    }

    /// Trains `config` (unless a model with exactly this configuration was already trained on
    /// this run's tokens, see [`VariantStudy::variant_dir`]) and returns its exported pipeline
    /// folder.
    pub fn train(&self, name: &str, config: &EmbeddedConfig) -> anyhow::Result<PathBuf> {
        let dir = self.variant_dir("diffusion", config)?;
        let model_dir = dir.join("model");
        if !model_dir.join("model_index.json").is_file() {
            eprintln!(
                "[{name}] training {} steps in {}",
                config.denoiser.steps,
                dir.display()
            );
            let checkpoint = dir.join("checkpoint");
            std::fs::create_dir_all(&dir)?;
            let text = initial_text_encoder(config, &self.run_dir, &self.data.scenes, &checkpoint)?;
            let mut trainer = DenoiserTrainer::resume_or_new(config, &checkpoint, text.as_ref())
                .with_context(|| format!("variant {name}"))?;
            trainer.fit(&self.data, &checkpoint, &dir.join("log.csv"), None)?;
            export_pipeline(
                config,
                trainer.model(),
                &vq_export_dir(&self.run_dir),
                &model_dir,
            )?;
        }
        Ok(model_dir)
    }

    /// Trains (see [`VariantStudy::train`]) and scores variant `name` with the full chain and the
    /// default guidance, reading the network with `parameterisation`.
    pub fn run(
        &self,
        name: &str,
        x: f64,
        config: &EmbeddedConfig,
        parameterisation: Parameterisation,
    ) -> anyhow::Result<VariantRow> {
        let model_dir = self.train(name, config)?;
        let pipeline = VqDiffusionPipeline::from_pretrained(
            &model_dir,
            LoadOptions {
                parameterisation,
                ..LoadOptions::default()
            },
        )?;
        let elbo = pipeline.elbo(
            &self.elbo_prompts,
            &self.elbo_tokens,
            &mut SeededNoise::new(0),
        )?;
        let options = pipeline
            .default_options(Vec::<String>::new())
            .sampler(SamplerChoice::Full);
        let (score, _) = score_variant(name, &pipeline, &self.set, &options, &self.net, 50, 0)?;
        let log = model_dir.parent().map(|d| d.join("log.csv"));
        let row = VariantRow {
            variant: name.to_string(),
            x,
            elbo_bits_per_token: elbo.bits_per_token,
            single_all_correct: score.single_all_correct,
            pair_all_correct: score.pair_all_correct,
            fid: score.fid,
            seconds_per_image: score.seconds_per_image,
            final_loss: log.and_then(|l| last_losses(&l)),
        };
        eprintln!(
            "[{name}] ELBO {:.4} bits/token, single {:.3}, pair {:.3}, FID {:.2}",
            row.elbo_bits_per_token, row.single_all_correct, row.pair_all_correct, row.fid
        );
        Ok(row)
    }
}

/// FNV-1a hash of a configuration's JSON (stable across runs and platforms).
pub fn config_hash(config: &EmbeddedConfig) -> anyhow::Result<u64> {
    json_hash(config)
}

/// FNV-1a of `value`'s JSON: a stable name for a configuration.
pub fn json_hash<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<u64> {
    let json = serde_json::to_vec(value)?;
    Ok(json.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }))
}

/// Writes `<stem>.csv` and `<stem>.json` into `out` and returns the printable table.
pub fn write_rows(rows: &[VariantRow], out: &Path, stem: &str) -> anyhow::Result<String> {
    let mut table = ResultTable::new(&[
        "variant",
        "x",
        "elbo_bits_per_token",
        "single_all_correct",
        "pair_all_correct",
        "fid",
        "seconds_per_image",
        "final_loss",
    ]);
    for r in rows {
        let loss = r.final_loss.map_or(String::new(), |l| l.to_string());
        table.push(
            vec![
                r.variant.clone(),
                r.x.to_string(),
                format!("{:.4}", r.elbo_bits_per_token),
                format!("{:.3}", r.single_all_correct),
                format!("{:.3}", r.pair_all_correct),
                format!("{:.2}", r.fid),
                format!("{:.4}", r.seconds_per_image),
                r.final_loss.map_or(String::new(), |l| format!("{l:.3}")),
            ],
            vec![
                r.variant.clone(),
                r.x.to_string(),
                r.elbo_bits_per_token.to_string(),
                r.single_all_correct.to_string(),
                r.pair_all_correct.to_string(),
                r.fid.to_string(),
                r.seconds_per_image.to_string(),
                loss,
            ],
        );
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(format!("{stem}.csv")), table.csv())?;
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(rows)? + "\n",
    )?;
    Ok(table.text())
}

/// The base configuration of a study: `quick` or `full`, with the denoiser budget overridden.
pub fn study_config(quick: bool, steps: u64, batch_size: usize) -> EmbeddedConfig {
    let mut base = if quick {
        EmbeddedConfig::quick()
    } else {
        EmbeddedConfig::full()
    };
    base.denoiser.steps = steps;
    base.denoiser.batch_size = batch_size;
    base.denoiser.warmup_steps = (steps / 10).max(1);
    base
}

/// Command-line options shared by the train-and-score studies.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainStudyArgs {
    /// The tiny configuration, a few steps per variant (seconds; CI).
    #[arg(long)]
    pub quick: bool,
    /// Run folder holding (or receiving) the VQ-VAE and the token cache; the default is the
    /// embedded model's run, so its VQ-VAE and tokens are reused. Variants train under
    /// `<run-dir>/variants/`, shared between studies.
    #[arg(long, default_value = "results/embedded-run")]
    pub run_dir: PathBuf,
    /// Training steps of each variant.
    #[arg(long, default_value_t = 800)]
    pub steps: u64,
    /// Examples per step.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Held-out (validation) images for the likelihoods.
    #[arg(long, default_value_t = 100)]
    pub elbo_images: usize,
    /// One-object and two-object test prompts each, for faithfulness and FID.
    #[arg(long, default_value_t = 100)]
    pub prompts: usize,
}

/// What a train-and-score study runs with, after `--quick` is applied.
#[derive(Debug, Clone, Serialize)]
pub struct StudyScale {
    /// Where the VQ-VAE, tokens and variants live.
    pub run_dir: PathBuf,
    /// The base recipe (denoiser budget overridden).
    pub base: EmbeddedConfig,
    /// Held-out images for the likelihoods.
    pub elbo_images: usize,
    /// Test prompts of each kind.
    pub prompts: usize,
}

impl TrainStudyArgs {
    /// The study's scale: the tiny recipe in a run folder under `out` with `--quick`.
    pub fn scale(&self, out: &Path) -> StudyScale {
        if self.quick {
            StudyScale {
                run_dir: out.join("quick-run"),
                base: study_config(true, 4, 8),
                elbo_images: 4,
                prompts: 2,
            }
        } else {
            StudyScale {
                run_dir: self.run_dir.clone(),
                base: study_config(false, self.steps, self.batch_size),
                elbo_images: self.elbo_images,
                prompts: self.prompts,
            }
        }
    }
}

impl StudyScale {
    /// Prepares the shared data (see [`VariantStudy::prepare`]).
    pub fn prepare(&self) -> anyhow::Result<VariantStudy> {
        VariantStudy::prepare(&self.base, &self.run_dir, self.elbo_images, self.prompts)
    }
}
