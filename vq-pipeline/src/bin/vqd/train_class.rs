//! `vqd train` for the denoisers without text: class-conditional (the original's
//! `Condition2ImageTransformer`, on a folder of class sub-folders: `DIR/<class>/<image>`) and
//! unconditional (`UnCondition2ImageTransformer`, on a folder of images). Chosen by
//! `--denoiser-config` (a new network of that `_class_name`, seeded with the original's
//! initialisation) or by `--model` naming a class-model folder (fine-tuning, e.g. a converted
//! ImageNet model, whose class names the data's folders must use).
//!
//! The run folder is the text trainer's: `config.json`, `tokens.safetensors`, `checkpoint/`
//! (exact resume), `loss.csv`, `loss_curve.png`, `samples/step-N.png`, and at the end `model/`
//! (a class-model folder that `vqd generate --class` loads), `samples.png` (one image per
//! class, or eight unconditional ones) and `report.json` (validation ELBO before and after).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use discrete_diffusion::{MaskAndReplace, SeededNoise, VqDiffusionSchedule};
use indicatif::{ProgressBar, ProgressStyle};
use vq_codebook::{VqModel, VqModelConfig};
use vq_pipeline::{
    ClassConditionalPipeline, GenerationOptions, LoadOptions, encode_sized_image,
    parse_class_label, write_atomically,
};
use vq_train::{
    BadData, ClassFolder, ClassTokenData, Condition2ImageModel, DenoiserTrainer,
    DenoiserTrainingConfig, ImageFolder, UnconditionalTokenData, export_class_pipeline, fit_image,
    write_json_atomic,
};
use vq_transformer::{
    CLASS_CONDITIONAL_CLASS_NAME, Condition2ImageConfig, UNCONDITIONAL_CLASS_NAME,
};

use crate::train::{TrainArgs, settings_over};
use crate::training_loop::{LoopSettings, run_training, use_ema_weights};

/// Where the network comes from.
pub enum ClassStart {
    /// A new network of this configuration (`--denoiser-config`).
    Fresh(Condition2ImageConfig),
    /// The class model folder `--model` names (fine-tuning).
    FineTune(PathBuf),
}

/// `Some` when the run trains a class-conditional or unconditional denoiser: a
/// `--denoiser-config` of either class name, or a `--model` that is a class-model folder.
pub fn class_start(args: &TrainArgs, root: &Path) -> anyhow::Result<Option<ClassStart>> {
    if let Some(path) = &args.denoiser_config {
        let value: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--denoiser-config {}: {e}", path.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("--denoiser-config {}: {e}", path.display()))?;
        let class = value.get("_class_name").and_then(|v| v.as_str());
        if matches!(class, Some(c) if c == CLASS_CONDITIONAL_CLASS_NAME || c == UNCONDITIONAL_CLASS_NAME)
        {
            let config = Condition2ImageConfig::from_file(path)
                .map_err(|e| anyhow::anyhow!("--denoiser-config {}: {e}", path.display()))?;
            return Ok(Some(ClassStart::Fresh(config)));
        }
        return Ok(None);
    }
    Ok(vq_pipeline::is_class_conditional_model(root).then(|| ClassStart::FineTune(root.into())))
}

/// The data as (tokens-to-be, label per item or none, class names).
struct Items {
    paths: Vec<PathBuf>,
    labels: Option<Vec<usize>>,
    names: Vec<String>,
    skipped: Vec<(PathBuf, String)>,
    root: PathBuf,
}

impl Items {
    fn open(data: &Path, unconditional: bool, bad: BadData) -> anyhow::Result<Self> {
        if unconditional {
            let f = ImageFolder::open_images(data, bad)?;
            Ok(Self {
                paths: f.items.iter().map(|i| i.path.clone()).collect(),
                labels: None,
                names: Vec::new(),
                skipped: f.skipped,
                root: f.root,
            })
        } else {
            let f = ClassFolder::open(data, bad)?;
            Ok(Self {
                paths: f.items.iter().map(|i| i.path.clone()).collect(),
                labels: Some(f.items.iter().map(|i| i.label).collect()),
                names: f.class_names,
                skipped: f.skipped,
                root: f.root,
            })
        }
    }

    /// (training, validation) item indices by the stable hash split.
    fn split(&self, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let folder = ImageFolder {
            root: self.root.clone(),
            items: self
                .paths
                .iter()
                .map(|p| vq_train::CaptionedImage {
                    path: p.clone(),
                    caption: String::new(),
                })
                .collect(),
            skipped: Vec::new(),
        };
        let (train, val) = folder.split(fraction, seed);
        let index = |items: Vec<&vq_train::CaptionedImage>| -> Vec<usize> {
            items
                .iter()
                .map(|i| {
                    self.paths
                        .iter()
                        .position(|p| *p == i.path)
                        .expect("own item")
                })
                .collect()
        };
        (index(train), index(val))
    }
}

fn select(tokens: &Tensor, idx: &[usize]) -> anyhow::Result<Tensor> {
    let idx: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    let n = idx.len();
    Ok(tokens.index_select(&Tensor::from_vec(idx, n, tokens.device())?, 0)?)
}

/// The images as tokens, from the run's cache when it is current.
fn tokens(
    vqvae: &VqModel,
    weights: &Path,
    items: &Items,
    side: u32,
    run: &Path,
    device: &Device,
) -> anyhow::Result<Tensor> {
    let labels: Vec<String> = match &items.labels {
        Some(l) => l.iter().map(|&l| items.names[l].clone()).collect(),
        None => vec![String::new(); items.paths.len()],
    };
    let key = vq_train::files_key(
        std::iter::once(weights).chain(items.paths.iter().map(PathBuf::as_path)),
        labels.iter().map(String::as_str),
    );
    let cache = vq_train::TokenCache::new(run.join("tokens.safetensors"));
    if let Some(tokens) = cache.load(&key) {
        return Ok(tokens.to_device(device)?);
    }
    let bar = ProgressBar::new(items.paths.len() as u64).with_style(
        ProgressStyle::with_template("encoding images [{bar:30}] {pos}/{len} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut rows = Vec::with_capacity(items.paths.len());
    for path in &items.paths {
        let image = fit_image(path, side)?;
        rows.push(
            encode_sized_image(vqvae, &image, (side, side), device)?.to_device(&Device::Cpu)?,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tokens = Tensor::cat(&rows, 0)?;
    cache.store(&key, &tokens)?;
    Ok(tokens.to_device(device)?)
}

/// The labels the sample grids draw: the first eight classes, or eight "no class" draws.
fn sample_labels(config: &Condition2ImageConfig) -> Vec<usize> {
    if config.is_unconditional() {
        vec![config.null_label(); 8]
    } else {
        (0..config.num_labels.min(8)).collect()
    }
}

/// One image per label of `labels` from the model folder `dir`, four to a row, into `path`.
fn write_sample_grid(
    dir: &Path,
    labels: &[usize],
    path: &Path,
    device: &Device,
) -> anyhow::Result<()> {
    let pipeline = ClassConditionalPipeline::from_pretrained(
        dir,
        LoadOptions {
            device: device.clone(),
            ..LoadOptions::default()
        },
    )?;
    let names: Vec<String> = labels.iter().map(|l| format!("label {l}")).collect();
    let generation = pipeline.generate(
        labels,
        &GenerationOptions::new(names).guidance_scale(1.0),
        &mut SeededNoise::new(0),
        |_| Ok(()),
    )?;
    crate::training_loop::write_grid(&generation.images, path)
}

/// Validation bits per token of `model` on `tokens` with `labels`.
fn validation_bits(
    model: &Condition2ImageModel,
    chain: &MaskAndReplace,
    tokens: &Tensor,
    labels: &[usize],
) -> anyhow::Result<f64> {
    let condition = vq_transformer::ClassCondition {
        labels: labels.to_vec(),
        scale: 1.0,
    };
    let report = discrete_diffusion::elbo_bits_per_token(
        chain,
        &model.transformer,
        &condition,
        tokens,
        &mut SeededNoise::new(0),
    )?;
    Ok(report.bits_per_token)
}

/// Trains a class-conditional or unconditional denoiser (module docs). `root` is the located
/// `--model` (the VQ-VAE and schedule unless `--vqvae` replaces the first).
pub fn train(args: TrainArgs, root: &Path, start: ClassStart) -> anyhow::Result<()> {
    let started = Instant::now();
    let (Some(data_dir), Some(out)) = (args.data.clone(), args.out.clone()) else {
        anyhow::bail!("vqd train needs --data and --out (see vqd train --help)");
    };
    let device = vq_nn::parse_device(&args.model.device)?;
    let (config, base_names, base_weights) = match &start {
        ClassStart::Fresh(config) => (config.clone(), Vec::new(), None),
        ClassStart::FineTune(dir) => {
            let config = Condition2ImageConfig::from_file(dir.join("transformer/config.json"))?;
            let names_path = dir.join(vq_nn::CLASS_NAMES_FILE);
            let names: Vec<String> = if names_path.is_file() {
                serde_json::from_str(&std::fs::read_to_string(&names_path)?)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", names_path.display()))?
            } else {
                Vec::new()
            };
            let weights = vq_nn::WeightNames::DIFFUSERS
                .find(&dir.join("transformer"), vq_nn::Variant::Default)?;
            (config, names, Some(weights))
        }
    };
    let vqvae_dir = args.vqvae.clone().unwrap_or_else(|| root.join("vqvae"));
    let vq_config = VqModelConfig::from_file(vqvae_dir.join("config.json"))
        .map_err(|e| anyhow::anyhow!("the VQ-VAE {}: {e}", vqvae_dir.display()))?;
    let vq_weights = vq_nn::WeightNames::DIFFUSERS.find(&vqvae_dir, vq_nn::Variant::Default)?;
    let grid = vq_config.sample_size / vq_config.downsampling_factor();
    let mut schedule =
        VqDiffusionSchedule::from_file(root.join("scheduler/scheduler_config.json"))?;
    schedule.num_vec_classes = Some(vq_config.num_vq_embeddings + 1);
    let problems: Vec<String> = [
        (config.num_vector_embeds != vq_config.num_vq_embeddings + 1).then(|| {
            format!(
                "num_vector_embeds is {}, the VQ-VAE {} has {} codes (+ the mask = {})",
                config.num_vector_embeds,
                vqvae_dir.display(),
                vq_config.num_vq_embeddings,
                vq_config.num_vq_embeddings + 1
            )
        }),
        (config.sample_size != grid).then(|| {
            format!(
                "sample_size is {}, the VQ-VAE makes a {grid}×{grid} token grid",
                config.sample_size
            )
        }),
        (config.num_embeds_ada_norm < schedule.num_train_timesteps).then(|| {
            format!(
                "num_embeds_ada_norm is {}, the schedule has {} steps",
                config.num_embeds_ada_norm, schedule.num_train_timesteps
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    anyhow::ensure!(
        problems.is_empty(),
        "the {} does not fit its VQ-VAE and schedule: {}",
        config.class_name(),
        problems.join("; ")
    );

    let bad = if args.skip_bad_data {
        BadData::Skip
    } else {
        BadData::Error
    };
    let items = Items::open(&data_dir, config.is_unconditional(), bad)?;
    if !items.skipped.is_empty() {
        eprintln!("skipped {} bad item(s):", items.skipped.len());
        for (path, why) in &items.skipped {
            eprintln!("  {}: {why}", path.display());
        }
    }
    // The data's class folders as the model's labels.
    let (labels, class_names) = match &items.labels {
        None => (None, Vec::new()),
        Some(folder_labels) => {
            let map: Vec<usize> = match &start {
                ClassStart::Fresh(_) => {
                    anyhow::ensure!(
                        items.names.len() == config.num_labels,
                        "--data {} has {} class folders {:?}, the denoiser config num_labels {}",
                        data_dir.display(),
                        items.names.len(),
                        items.names,
                        config.num_labels
                    );
                    (0..items.names.len()).collect()
                }
                ClassStart::FineTune(dir) => items
                    .names
                    .iter()
                    .map(|n| {
                        parse_class_label(n, &base_names, config.num_labels).map_err(|e| {
                            anyhow::anyhow!(
                                "--data {}: class folder {n:?} is not a class of {}: {e}",
                                data_dir.display(),
                                dir.display()
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            let names = match &start {
                ClassStart::Fresh(_) => items.names.clone(),
                ClassStart::FineTune(_) => base_names.clone(),
            };
            (
                Some(folder_labels.iter().map(|&l| map[l]).collect::<Vec<_>>()),
                names,
            )
        }
    };

    std::fs::create_dir_all(&out)?;
    let defaults = DenoiserTrainingConfig {
        // No dropout where there is no learned null to drop to.
        caption_dropout: if config.has_learned_null() { 0.1 } else { 0.0 },
        ..DenoiserTrainingConfig::default()
    };
    let training = settings_over(defaults, &args)?;
    write_json_atomic(&out.join("config.json"), &training)?;
    let vqvae = VqModel::from_weights(&vq_config, &vq_weights, DType::F32, &device)?;
    let side = (config.sample_size * vq_config.downsampling_factor()) as u32;
    let all_tokens = tokens(&vqvae, &vq_weights, &items, side, &out, &device)?;
    let (train_idx, val_idx) = items.split(args.validation, training.seed);
    anyhow::ensure!(
        !train_idx.is_empty(),
        "no training images left after the validation split"
    );
    let label_of = |idx: &[usize]| -> Vec<usize> {
        idx.iter()
            .map(|&i| labels.as_ref().map_or(config.null_label(), |l| l[i]))
            .collect()
    };
    let train_tokens = select(&all_tokens, &train_idx)?;

    let model = match &base_weights {
        Some(weights) => Condition2ImageModel::from_weights(&config, weights, &device)?,
        None => Condition2ImageModel::new(&config, training.seed, &device)?,
    };
    let chain = MaskAndReplace::from_scheduler_config(&schedule)?;
    let val = if val_idx.is_empty() {
        None
    } else {
        let tokens = select(&all_tokens, &val_idx)?;
        let before = validation_bits(&model, &chain, &tokens, &label_of(&val_idx))?;
        Some((tokens, before))
    };
    let mut trainer = DenoiserTrainer::new(model, chain.clone(), training.clone())?;
    let preview = out.join(".sample-model");
    let grid_labels = sample_labels(&config);
    let sample = |trainer: &DenoiserTrainer<Condition2ImageModel>, path: &Path| {
        export_class_pipeline(
            trainer.model(),
            &schedule,
            &vqvae_dir,
            &class_names,
            &preview,
        )?;
        write_sample_grid(&preview, &grid_labels, path, &device)
    };
    let settings = LoopSettings::of(&args, &training);
    let session = match &labels {
        Some(_) => run_training(
            &mut trainer,
            &ClassTokenData {
                tokens: train_tokens,
                labels: label_of(&train_idx),
            },
            &out,
            &settings,
            sample,
        )?,
        None => run_training(
            &mut trainer,
            &UnconditionalTokenData {
                tokens: train_tokens,
            },
            &out,
            &settings,
            sample,
        )?,
    };
    let _ = std::fs::remove_dir_all(&preview);

    let exported = out.join("model");
    let _ = std::fs::remove_dir_all(&exported);
    use_ema_weights(&trainer)?;
    export_class_pipeline(
        trainer.model(),
        &schedule,
        &vqvae_dir,
        &class_names,
        &exported,
    )?;
    let kind = if config.is_unconditional() {
        "unconditional".to_string()
    } else {
        format!("class-conditional ({} classes)", config.num_labels)
    };
    let card = format!(
        "# {} VQ-Diffusion model\n\nA {kind} `{}` trained by `vqd train` for {} steps on {} images \
         of `{}` ({} held out for validation); every setting is in the run folder's \
         `config.json`, the losses in `loss.csv`, the validation ELBO in `report.json`. \
         Generate with `vqd generate --model <this folder> --class {}`.\n",
        if matches!(start, ClassStart::FineTune(_)) {
            "Fine-tuned"
        } else {
            "Trained"
        },
        config.class_name(),
        training.steps,
        train_idx.len(),
        data_dir.display(),
        val_idx.len(),
        if config.is_unconditional() {
            "none"
        } else {
            "<label or name>"
        },
    );
    write_atomically(&exported.join("README.md"), card.as_bytes())?;
    write_sample_grid(&exported, &grid_labels, &out.join("samples.png"), &device)?;

    let mut report = serde_json::json!({
        "data": data_dir.display().to_string(),
        "images": items.paths.len(),
        "skipped": items.skipped.len(),
        "training_images": train_idx.len(),
        "validation_images": val_idx.len(),
        "model": config.class_name(),
        "classes": class_names,
        "steps": training.steps,
        "steps_this_session": trainer.step() - session.first_step,
        "training_seconds_this_session": session.seconds,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    if let Some((tokens, before)) = val {
        report["validation_bits_per_token"] = serde_json::json!({
            "before": before,
            "after": validation_bits(trainer.model(), &chain, &tokens, &label_of(&val_idx))?,
        });
    }
    write_json_atomic(&out.join("report.json"), &report)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "exported {} (vqd generate --model {} --class {})",
        exported.display(),
        exported.display(),
        if config.is_unconditional() {
            "none"
        } else {
            "0"
        }
    );
    Ok(())
}
