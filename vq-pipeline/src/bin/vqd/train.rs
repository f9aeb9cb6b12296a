//! `vqd train`: fine-tune a VQ-Diffusion model (the embedded one, a local folder, or a hub
//! repo) on a folder of captioned images, with `vq-train`.
//!
//! The run folder holds everything and makes the command resumable: `config.json` (every
//! hyper-parameter), `tokens.safetensors` (the images encoded once by the model's VQ-VAE; reused
//! while the images, captions and VQ-VAE weights are unchanged), `checkpoint/` (weights, AdamW
//! moments, EMA, sampler state: re-running the command continues exactly where it stopped, also
//! after a kill), `loss.csv` and `loss_curve.png` (updated at every checkpoint),
//! `samples/step-N.png` (the validation captions drawn by the model
//! as it trains, every `--sample-every` steps), and at the end `model/` (a diffusers-layout folder `vqd generate
//! --model` loads), `samples.png` (validation captions drawn by the trained model) and
//! `report.json` (validation ELBO before and after, timings).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Args;
use clip_text::{ClipTextConfig, ClipTokenizer};
use discrete_diffusion::{MaskAndReplace, SeededNoise, VqDiffusionSchedule};
use indicatif::{ProgressBar, ProgressStyle};
use vq_pipeline::{LoadOptions, ModelFiles, VqDiffusionPipeline, write_atomically};
use vq_train::{
    BadData, DenoiserTrainer, DenoiserTrainingConfig, ImageFolder, JointModel,
    TextConditionedModel, TokenData, fit_image, write_json_atomic,
};
use vq_transformer::Transformer2DConfig;

use crate::training_loop::{LoopSettings, run_training, use_ema_weights};
use crate::{ModelArgs, locate};

/// `vqd train`: the denoiser by default, or a stage named by a subcommand.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TrainCommand {
    #[command(subcommand)]
    stage: Option<TrainStage>,
    #[command(flatten)]
    denoiser: TrainArgs,
}

#[derive(clap::Subcommand)]
enum TrainStage {
    /// Fine-tune the denoiser (text encoder, transformer, null embedding) on captioned images —
    /// what `vqd train` does without a subcommand.
    Denoiser(TrainArgs),
    /// Train a VQ-VAE from scratch on a folder of images; its export is what `vqd train
    /// --vqvae` trains a denoiser on.
    Vqvae(crate::train_vqvae::TrainVqvaeArgs),
}

/// Runs the chosen stage.
pub fn run(command: TrainCommand) -> anyhow::Result<()> {
    match command.stage {
        Some(TrainStage::Vqvae(args)) => crate::train_vqvae::train_vqvae(args),
        Some(TrainStage::Denoiser(args)) => train(args),
        None => train(command.denoiser),
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// The images: a folder with `metadata.jsonl` (`{"file_name", "text"}` a line) or a
    /// same-name `.txt` caption beside each image; for a class-conditional model one
    /// sub-folder per class (`DIR/<class>/<image>`), for an unconditional one any images.
    /// (Optional only to clap, so that `vqd train vqvae` needs none: required without a stage.)
    #[arg(long, required = true)]
    pub(crate) data: Option<PathBuf>,
    /// The run folder (created; re-running with it resumes).
    #[arg(long, required = true)]
    pub(crate) out: Option<PathBuf>,
    /// The model to start from (`--model`; default: the embedded model).
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// A JSON file with any of the training settings (see `config.json` of a run for every
    /// key); command-line flags override it.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Optimiser steps in all.
    #[arg(long)]
    pub(crate) steps: Option<u64>,
    /// Examples per step.
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub(crate) learning_rate: Option<f64>,
    /// Probability of training a caption (or class label) as the null condition (for
    /// guidance; default 0.1, or 0 for a class or unconditional model without a learned null).
    #[arg(long)]
    pub(crate) caption_dropout: Option<f64>,
    /// Keep the text encoder fixed.
    #[arg(long)]
    pub(crate) freeze_text_encoder: bool,
    /// EMA decay of the weights (exported instead of the raw weights).
    #[arg(long)]
    pub(crate) ema: Option<f64>,
    /// Seed of the run.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 100)]
    pub(crate) checkpoint_every: u64,
    /// Steps between sample grids of the validation captions (`samples/step-N.png`; 0: only
    /// the final `samples.png`).
    #[arg(long, default_value_t = 500)]
    pub(crate) sample_every: u64,
    /// Fraction of the images held out for validation.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) validation: f64,
    /// Leave bad images out (counted) instead of stopping at the first.
    #[arg(long)]
    pub(crate) skip_bad_data: bool,
    /// A VQ-VAE folder (`vqd train vqvae`'s `RUN/vqvae`, or any diffusers `VQModel` folder)
    /// whose tokens the denoiser learns, in place of the model's own; the export carries it.
    /// Its codebook must have as many codes as the transformer has classes.
    #[arg(long)]
    pub(crate) vqvae: Option<PathBuf>,
    /// Train a new denoiser from scratch with this diffusers `transformer/config.json`
    /// (seeded PyTorch-default initialisation) instead of fine-tuning the model's; the text
    /// encoder, null embedding and VQ-VAE (or `--vqvae`'s) are kept. Checked against them.
    /// With `"_class_name": "Condition2ImageTransformer"` (or `"UnCondition2ImageTransformer"`)
    /// a class-conditional (unconditional) network is trained instead, on the model's (or
    /// `--vqvae`'s) VQ-VAE and schedule.
    #[arg(long)]
    pub(crate) denoiser_config: Option<PathBuf>,
}

/// What the token cache depends on: every image's path, size, mtime and caption, and the
/// VQ-VAE weights file's.
fn cache_key(folder: &ImageFolder, vqvae_weights: &Path) -> String {
    vq_train::files_key(
        std::iter::once(vqvae_weights).chain(folder.items.iter().map(|i| i.path.as_path())),
        folder.items.iter().map(|i| i.caption.as_str()),
    )
}

/// The images as tokens, from the cache when it is current.
fn tokens(
    pipeline: &VqDiffusionPipeline,
    folder: &ImageFolder,
    run: &Path,
) -> anyhow::Result<Tensor> {
    let key = cache_key(folder, &pipeline.files().vqvae_weights);
    let cache = vq_train::TokenCache::new(run.join("tokens.safetensors"));
    if let Some(tokens) = cache.load(&key) {
        return Ok(tokens);
    }
    let (w, _) = pipeline.image_size();
    let bar = ProgressBar::new(folder.items.len() as u64).with_style(
        ProgressStyle::with_template("encoding images [{bar:30}] {pos}/{len} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut rows = Vec::with_capacity(folder.items.len());
    for item in &folder.items {
        let image = fit_image(&item.path, w)?;
        rows.push(pipeline.encode_image(&image)?.to_device(&Device::Cpu)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tokens = Tensor::cat(&rows, 0)?;
    cache.store(&key, &tokens)?;
    Ok(tokens)
}

/// `defaults` with the keys of the JSON object in `path` (`--config`) replacing theirs; an
/// unknown key or a value of the wrong type is an error naming the file.
pub fn merge_config<T: serde::Serialize + serde::de::DeserializeOwned>(
    defaults: T,
    path: Option<&Path>,
) -> anyhow::Result<T> {
    let mut value = serde_json::to_value(defaults)?;
    let Some(path) = path else {
        return Ok(serde_json::from_value(value)?);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
    let given: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
    let serde_json::Value::Object(given) = given else {
        anyhow::bail!("--config {}: expected a JSON object", path.display());
    };
    for (k, v) in given {
        anyhow::ensure!(
            value.get(&k).is_some(),
            "--config {}: unknown setting {k:?}",
            path.display()
        );
        value[k] = v;
    }
    serde_json::from_value(value).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))
}

/// The run's settings: defaults, then `--config`, then the flags.
fn settings(args: &TrainArgs) -> anyhow::Result<DenoiserTrainingConfig> {
    settings_over(DenoiserTrainingConfig::default(), args)
}

/// The run's settings: `defaults`, then `--config`, then the flags.
pub fn settings_over(
    defaults: DenoiserTrainingConfig,
    args: &TrainArgs,
) -> anyhow::Result<DenoiserTrainingConfig> {
    let mut config = merge_config(defaults, args.config.as_deref())?;
    if let Some(v) = args.steps {
        config.steps = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = args.learning_rate {
        config.learning_rate = v;
    }
    if let Some(v) = args.caption_dropout {
        config.caption_dropout = v;
    }
    if args.freeze_text_encoder {
        config.freeze_text_encoder = true;
    }
    if let Some(v) = args.ema {
        config.ema_decay = Some(v);
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    Ok(config)
}

/// Copies the pipeline of the model folder `from` to `to`: `model_index.json`, a
/// `generation_config.json`, and the files of every component folder `model_index.json` names,
/// leaving out the weight files of the parts that training replaces (anything else in the
/// folder — an old model card, test outputs — is not part of the model and stays behind).
fn copy_model(from: &Path, to: &Path) -> anyhow::Result<()> {
    copy_pipeline(
        from,
        to,
        &[
            "text_encoder",
            "transformer",
            "learned_classifier_free_sampling_embeddings",
        ],
    )
}

/// [`copy_model`] leaving out the weight files of the components in `replaced`.
fn copy_pipeline(from: &Path, to: &Path, replaced: &[&str]) -> anyhow::Result<()> {
    let with_path = |what: &str, path: &Path, e: std::io::Error| {
        anyhow::anyhow!("{what} {}: {e}", path.display())
    };
    std::fs::create_dir_all(to).map_err(|e| with_path("cannot create", to, e))?;
    let index_path = from.join("model_index.json");
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&index_path)
            .map_err(|e| with_path("cannot read", &index_path, e))?,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", index_path.display()))?;
    let components: Vec<String> = index
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, v)| !k.starts_with('_') && v.is_array())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    for file in ["model_index.json", "generation_config.json"] {
        let source = from.join(file);
        if source.is_file() {
            std::fs::copy(&source, to.join(file))
                .map_err(|e| with_path("cannot copy", &source, e))?;
        }
    }
    for name in components {
        let path = from.join(&name);
        if !path.is_dir() {
            continue;
        }
        let target = to.join(&name);
        std::fs::create_dir_all(&target).map_err(|e| with_path("cannot create", &target, e))?;
        for inner in std::fs::read_dir(&path).map_err(|e| with_path("cannot list", &path, e))? {
            let inner = inner
                .map_err(|e| with_path("cannot list", &path, e))?
                .path();
            let file = inner
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let is_weight = file.ends_with(".safetensors") || file.ends_with(".bin");
            if inner.is_file() && !(is_weight && replaced.contains(&name.as_str())) {
                std::fs::copy(&inner, target.join(&file))
                    .map_err(|e| with_path("cannot copy", &inner, e))?;
            }
        }
    }
    Ok(())
}

/// `RUN/base`: the model at `root` with its VQ-VAE replaced by the one at `vqvae`, after
/// checking that the transformer has a class for each of its codes.
fn with_vqvae(root: &Path, vqvae: &Path, run: &Path) -> anyhow::Result<PathBuf> {
    let vq_config = vqvae.join("config.json");
    let vq = vq_codebook::VqModelConfig::from_file(&vq_config)
        .map_err(|e| anyhow::anyhow!("--vqvae {}: {e}", vq_config.display()))?;
    let tr_config = root.join("transformer").join("config.json");
    let transformer: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&tr_config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", tr_config.display()))?,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", tr_config.display()))?;
    let classes = transformer["num_vector_embeds"].as_u64().unwrap_or(0) as usize;
    anyhow::ensure!(
        classes == vq.num_vq_embeddings + 1,
        "--vqvae {}: its codebook has {} codes but the transformer of {} predicts {} classes \
         (num_vector_embeds {classes} = codes + the mask); train a VQ-VAE with num_vq_embeddings \
         {} (vqd train vqvae --architecture) or start from a model that matches",
        vqvae.display(),
        vq.num_vq_embeddings,
        root.display(),
        classes.saturating_sub(1),
        classes.saturating_sub(1)
    );
    let base = run.join("base");
    let _ = std::fs::remove_dir_all(&base);
    copy_pipeline(root, &base, &["vqvae"])?;
    for entry in
        std::fs::read_dir(vqvae).map_err(|e| anyhow::anyhow!("--vqvae {}: {e}", vqvae.display()))?
    {
        let path = entry?.path();
        if path.is_file() {
            let target = base
                .join("vqvae")
                .join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &target)
                .map_err(|e| anyhow::anyhow!("{} → {}: {e}", path.display(), target.display()))?;
        }
    }
    Ok(base)
}

/// `RUN/base` with a new, freshly initialised denoiser of the diffusers config `config` (a
/// `transformer/config.json`; seeded PyTorch-default initialisation), checked against the
/// model's VQ-VAE (codes + mask = `num_vector_embeds`, its token grid = `sample_size`), text
/// encoder (`cross_attention_dim`) and schedule (`num_embeds_ada_norm` ≥ T). Made once: a
/// resumed run finds it in place.
fn with_new_denoiser(root: &Path, config: &Path, run: &Path, seed: u64) -> anyhow::Result<PathBuf> {
    let base = run.join("base");
    let marker = base.join("transformer").join("initialised-from.json");
    let transformer = Transformer2DConfig::from_file(config)
        .map_err(|e| anyhow::anyhow!("--denoiser-config: {e}"))?;
    if marker.is_file() {
        let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&marker)?)?;
        anyhow::ensure!(
            recorded["config"] == serde_json::to_value(&transformer)?,
            "{} was started with another --denoiser-config; use a new --out",
            run.display()
        );
        return Ok(base);
    }
    let files = ModelFiles::locate(root, vq_nn::Variant::Default)?;
    let vq = vq_codebook::VqModelConfig::from_file(&files.vqvae_config)?;
    let text = ClipTextConfig::from_pretrained(&files.text_encoder_dir)?;
    let schedule = VqDiffusionSchedule::from_file(&files.scheduler_config)?;
    let grid = vq.sample_size / vq.downsampling_factor();
    let problems: Vec<String> = [
        (transformer.num_vector_embeds != Some(vq.num_vq_embeddings + 1)).then(|| {
            format!(
                "num_vector_embeds is {:?}, the VQ-VAE has {} codes (+ the mask = {})",
                transformer.num_vector_embeds,
                vq.num_vq_embeddings,
                vq.num_vq_embeddings + 1
            )
        }),
        (transformer.sample_size != Some(grid)).then(|| {
            format!(
                "sample_size is {:?}, the VQ-VAE makes a {grid}×{grid} token grid",
                transformer.sample_size
            )
        }),
        (transformer.cross_attention_dim != Some(text.hidden_size)).then(|| {
            format!(
                "cross_attention_dim is {:?}, the text encoder is {} wide",
                transformer.cross_attention_dim, text.hidden_size
            )
        }),
        (transformer.num_embeds_ada_norm.unwrap_or(0) < schedule.num_train_timesteps).then(|| {
            format!(
                "num_embeds_ada_norm is {:?}, the schedule has {} steps",
                transformer.num_embeds_ada_norm, schedule.num_train_timesteps
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    anyhow::ensure!(
        problems.is_empty(),
        "--denoiser-config {} does not fit the model {}: {}",
        config.display(),
        root.display(),
        problems.join("; ")
    );
    if root != base {
        let _ = std::fs::remove_dir_all(&base);
        copy_pipeline(root, &base, &["transformer"])?;
    } else {
        for file in [
            "diffusion_pytorch_model.safetensors",
            "diffusion_pytorch_model.bin",
        ] {
            let _ = std::fs::remove_file(base.join("transformer").join(file));
        }
    }
    let dir = base.join("transformer");
    std::fs::create_dir_all(&dir)?;
    write_json_atomic(
        &dir.join("config.json"),
        &vq_pipeline::with_diffusers_class(&transformer, "Transformer2DModel"),
    )?;
    vq_train::write_fresh_transformer(
        &transformer,
        seed,
        &dir.join("diffusion_pytorch_model.safetensors"),
    )?;
    write_json_atomic(
        &marker,
        &serde_json::json!({"config": transformer, "seed": seed}),
    )?;
    Ok(base)
}

/// The images of `prompts` (seed 0, the model's recommended settings), four to a row.
fn write_sample_grid(
    pipeline: &VqDiffusionPipeline,
    prompts: &[String],
    path: &Path,
) -> anyhow::Result<()> {
    let options = pipeline.default_options(prompts.to_vec());
    let generation = pipeline.generate(&options, &mut SeededNoise::new(0), |_| Ok(()))?;
    crate::training_loop::write_grid(&generation.images, path)
}

/// Validation bits per token (negative ELBO) of `pipeline` on `tokens` with `captions`.
fn validation_bits(
    pipeline: &VqDiffusionPipeline,
    tokens: &Tensor,
    captions: &[String],
) -> anyhow::Result<f64> {
    let report = pipeline.elbo(
        captions,
        &tokens.to_device(pipeline.device())?,
        &mut SeededNoise::new(0),
    )?;
    Ok(report.bits_per_token)
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (Some(data_dir), Some(out)) = (args.data.clone(), args.out.clone()) else {
        anyhow::bail!("vqd train needs --data and --out (see vqd train --help)");
    };
    anyhow::ensure!(
        matches!(args.model.dtype, crate::DTypeArg::F32),
        "--dtype has no effect on vqd train: training keeps f32 weights (the export keeps each \
         weight's stored dtype)"
    );
    anyhow::ensure!(
        !args.model.int8,
        "--int8 has no effect on vqd train: training keeps f32 weights"
    );
    let device = vq_nn::parse_device(&args.model.device)?;
    let (root, name, variant, _) = locate(&args.model)?;
    if let Some(start) = crate::train_class::class_start(&args, &root)? {
        return crate::train_class::train(args, &root, start);
    }
    let root = match &args.vqvae {
        Some(vqvae) => with_vqvae(&root, vqvae, &out)?,
        None => root,
    };
    let root = match &args.denoiser_config {
        Some(config) => with_new_denoiser(&root, config, &out, args.seed.unwrap_or(0))?,
        None => root,
    };
    let pipeline = VqDiffusionPipeline::from_pretrained(
        &root,
        LoadOptions {
            variant,
            device: device.clone(),
            ..LoadOptions::default()
        },
    )?;
    let files: ModelFiles = pipeline.files().clone();
    let bad = if args.skip_bad_data {
        BadData::Skip
    } else {
        BadData::Error
    };
    let folder = ImageFolder::open(&data_dir, bad)?;
    if !folder.skipped.is_empty() {
        eprintln!("skipped {} bad item(s):", folder.skipped.len());
        for (path, why) in &folder.skipped {
            eprintln!("  {}: {why}", path.display());
        }
    }
    std::fs::create_dir_all(&out)?;
    let config = settings(&args)?;
    write_json_atomic(&out.join("config.json"), &config)?;
    let all_tokens = tokens(&pipeline, &folder, &out)?;
    let (train_items, val_items) = folder.split(args.validation, config.seed);
    let index = |items: &[&vq_train::CaptionedImage]| -> anyhow::Result<(Tensor, Vec<String>)> {
        let idx: Vec<u32> = items
            .iter()
            .map(|i| folder.items.iter().position(|x| x == *i).expect("own item") as u32)
            .collect();
        let n = idx.len();
        Ok((
            all_tokens.index_select(&Tensor::from_vec(idx, n, &Device::Cpu)?, 0)?,
            items.iter().map(|i| i.caption.clone()).collect(),
        ))
    };
    anyhow::ensure!(
        !train_items.is_empty(),
        "no training images left after the validation split"
    );
    let (train_tokens, train_captions) = index(&train_items)?;
    let data = TokenData {
        tokens: train_tokens.to_device(&device)?,
        captions: train_captions,
    };

    let text = ClipTextConfig::from_pretrained(&files.text_encoder_dir)?;
    let transformer = Transformer2DConfig::from_file(&files.transformer_config)?;
    let model = JointModel::from_weights(
        (&text, &files.text_encoder_weights),
        (&transformer, &files.transformer_weights),
        files.null_embedding.as_ref().map(|(_, w)| w.as_path()),
        &device,
    )?;
    let schedule = VqDiffusionSchedule::from_file(&files.scheduler_config)?;
    let chain = MaskAndReplace::from_scheduler_config(&schedule)?;
    let tokenizer = ClipTokenizer::from_pretrained(&files.tokenizer_dir)?;
    let mut trainer = DenoiserTrainer::new(
        TextConditionedModel::new(model, tokenizer),
        chain,
        config.clone(),
    )?;
    let val_prompts: Vec<String> = val_items
        .iter()
        .take(8)
        .map(|i| i.caption.clone())
        .collect();
    let session = run_training(
        &mut trainer,
        &data,
        &out,
        &LoopSettings::of(&args, &config),
        |trainer, path| {
            if val_prompts.is_empty() {
                return Ok(());
            }
            let m = &trainer.model().joint;
            let current = pipeline.with_models(
                m.text.clone(),
                m.transformer.clone(),
                m.null.as_ref().map(|v| v.as_tensor().clone()),
            )?;
            write_sample_grid(&current, &val_prompts, path)
        },
    )?;
    let (first_step, train_seconds) = (session.first_step, session.seconds);

    // Export: the starting model's folder with the trained parts (EMA weights when kept).
    let exported = out.join("model");
    let _ = std::fs::remove_dir_all(&exported);
    copy_model(&root, &exported)?;
    use_ema_weights(&trainer)?;
    trainer.model().joint.save_weights(&exported)?;
    let card = format!(
        "# Fine-tuned VQ-Diffusion model\n\nStarted from `{name}`, trained by `vqd train` for {} steps \
         on {} captioned images of `{}` ({} held out for validation); every setting is in the run \
         folder's `config.json`, the losses in `loss.csv`, the validation ELBO in `report.json`. \
         The components load in diffusers' `VQDiffusionPipeline` like the original's.\n",
        config.steps,
        train_items.len(),
        data_dir.display(),
        val_items.len()
    );
    write_atomically(&exported.join("README.md"), card.as_bytes())?;
    let trained = VqDiffusionPipeline::from_pretrained(
        &exported,
        LoadOptions {
            device: device.clone(),
            ..LoadOptions::default()
        },
    )?;

    let mut report = serde_json::json!({
        "data": data_dir.display().to_string(),
        "images": folder.items.len(),
        "skipped": folder.skipped.len(),
        "training_images": train_items.len(),
        "validation_images": val_items.len(),
        "initial_model": name,
        "steps": config.steps,
        "steps_this_session": trainer.step() - first_step,
        "training_seconds_this_session": train_seconds,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    if !val_items.is_empty() {
        let (val_tokens, val_captions) = index(&val_items)?;
        report["validation_bits_per_token"] = serde_json::json!({
            "before": validation_bits(&pipeline, &val_tokens, &val_captions)?,
            "after": validation_bits(&trained, &val_tokens, &val_captions)?,
        });
        write_sample_grid(&trained, &val_prompts, &out.join("samples.png"))?;
    }
    write_json_atomic(&out.join("report.json"), &report)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "exported {} (vqd generate --model {})",
        exported.display(),
        exported.display()
    );
    Ok(())
}
