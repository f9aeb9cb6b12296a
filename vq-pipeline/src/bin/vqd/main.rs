//! `vqd` — VQ-Diffusion text-to-image from the command line.
//!
//! ```text
//! vqd generate "a red circle in the top left" --out out.png --seed 0
//! vqd generate "a teddy bear playing in the pool" --model microsoft/vq-diffusion-ithq --out bear.png
//! vqd inpaint --image scene.png --box 0,0,16,16 "a blue square in the top left" --out edited.png
//! vqd vary --image scene.png --strength 0.5 --out variation.png
//! vqd convert --from original coco_learnable.pth --out coco-learnable
//! ```
//!
//! Without `--model` it uses the embedded shape-world model (compiled into the binary from
//! `models/shape-world/`, unpacked to the user's cache on first use).

mod class_generate;
mod convert;
#[cfg(feature = "serve")]
mod serve;
mod train;
mod train_class;
mod train_vqvae;
mod training_loop;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use discrete_diffusion::{NoiseSource, Reimpose, SeededNoise, StepEvent, Truncation};
use indicatif::{ProgressBar, ProgressStyle};
use vq_pipeline::{
    EditInput, Generation, GenerationOptions, HubOptions, LoadOptions, ModelFiles, ModelRecord,
    ModelSource, NullCondition, OutputPlan, RunLog, SamplerChoice, Variant, VqDiffusionPipeline,
    box_mask, check_consistency, contact_sheet, default_model_dir, upscale_nearest,
    write_atomically,
};

#[derive(Parser)]
#[command(
    name = "vqd",
    version,
    about = "VQ-Diffusion text-to-image (diffusers-compatible) on candle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate images from one or more prompts.
    Generate(GenerateArgs),
    /// Regenerate a region of an image (white pixels of --mask, or --box) under the prompts,
    /// keeping every other token exactly.
    Inpaint(InpaintArgs),
    /// Variations of an image: partially noised to --strength and denoised (0: the VQ
    /// reconstruction, 1: plain generation).
    Vary(VaryArgs),
    /// Check a model folder or hub repository without generating: its files and configs
    /// (every problem is listed), and with --weights every tensor too.
    Check(CheckArgs),
    /// Convert an original microsoft/VQ-Diffusion checkpoint (`*.pth`, with its VQ-GAN) into a
    /// diffusers-layout model folder that `--model` loads.
    Convert(convert::ConvertArgs),
    /// Fine-tune a model's denoiser on a folder of captioned images (`vqd train --data …`, or
    /// `vqd train denoiser …`), or train a VQ-VAE on a folder of images (`vqd train vqvae …`).
    /// Resumable; exports a model folder.
    Train(train::TrainCommand),
    /// A local web app (and JSON HTTP API) that generates and edits images, showing the tokens
    /// unmask live.
    #[cfg(feature = "serve")]
    Serve(ServeArgs),
}

#[cfg(feature = "serve")]
#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to bind (loopback by default: the server has no authentication).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 7860)]
    port: u16,
    /// Jobs queued or running at once; more requests are answered 503 with Retry-After.
    #[arg(long, default_value_t = 8)]
    max_queue: usize,
    /// Jobs running at once (each uses every core; 1 is fastest on a small CPU).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Images per request.
    #[arg(long, default_value_t = 16)]
    max_images: usize,
    /// Largest request body in MiB (edits carry their images).
    #[arg(long, default_value_t = 8)]
    max_body_mib: usize,
    /// Serve images N times larger (nearest-neighbour).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    upscale: u32,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Also load every weight: each tensor's key, dtype and shape, no unused tensor, and every
    /// value finite (the first NaN or infinite tensor is named).
    #[arg(long)]
    weights: bool,
}

#[derive(Args)]
struct ModelArgs {
    /// A local folder in the diffusers layout, or a Hugging Face repo id
    /// (e.g. microsoft/vq-diffusion-ithq), resolved through the Hugging Face cache.
    /// Default: the embedded shape-world model (models/shape-world, or $VQD_DEFAULT_MODEL).
    #[arg(long)]
    model: Option<String>,
    /// Hub revision (branch, tag or commit; hub models only) [default: main].
    #[arg(long)]
    revision: Option<String>,
    /// Never download; use only the local Hugging Face cache (also: HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
    /// Seconds to wait for the hub to answer a request or continue a download (also:
    /// HF_HUB_DOWNLOAD_TIMEOUT) [default: 10].
    #[arg(allow_negative_numbers = true, long)]
    hub_timeout: Option<f64>,
    /// Weight files to read: the default ones or the hub's `*.fp16.*` copies.
    #[arg(long, value_enum, default_value_t = VariantArg::Default)]
    variant: VariantArg,
    /// Storage precision of the weights in memory (activations are f32 on the CPU).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype: DTypeArg,
    /// Quantise the transformer's attention and feed-forward projections to 8 bits (CPU only;
    /// integer products on CPUs with AVX-512-VNNI; docs/performance.md measures the cost).
    #[arg(long)]
    int8: bool,
    /// Device: cpu, cuda, cuda:N, metal (GPU devices need a build with `--features cuda` or
    /// `--features metal`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct GenerateArgs {
    /// The prompts (one image batch entry each).
    #[arg(required_unless_present = "class")]
    prompts: Vec<String>,
    /// Class-conditional models (converted original ImageNet checkpoints): a class label
    /// (`207`), a class name (`"golden retriever"`), or `none` (unconditional); repeat for
    /// several.
    #[arg(long)]
    class: Vec<String>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct InpaintArgs {
    /// The prompts (one image batch entry each): what the region should show.
    #[arg(required = true)]
    prompts: Vec<String>,
    /// The source image (any size and mode: scaled to cover the model's resolution and
    /// centre-cropped).
    #[arg(long)]
    image: PathBuf,
    /// The region to regenerate: white pixels (luma ≥ 128) of this image, any size (fitted
    /// like the source). A token is regenerated when any pixel of its cell is white.
    #[arg(long, required_unless_present = "box", conflicts_with = "box")]
    mask: Option<PathBuf>,
    /// The region as a box x0,y0,x1,y1 in the source image's pixels (x1, y1 exclusive).
    #[arg(long = "box", value_parser = parse_box)]
    r#box: Option<(u32, u32, u32, u32)>,
    /// Fraction of the chain run: 1 regenerates the region from all-mask; below 1 starts it
    /// from the source partially noised (an edit that keeps the region's layout).
    #[arg(allow_negative_numbers = true, long, default_value_t = 1.0)]
    strength: f64,
    #[command(flatten)]
    edit: EditArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct VaryArgs {
    /// Prompts (optional: without one, the empty prompt).
    prompts: Vec<String>,
    /// The source image (any size and mode, fitted like `inpaint`'s).
    #[arg(long)]
    image: PathBuf,
    /// Fraction of the chain run, in [0, 1]: 0 returns the VQ reconstruction, 1 is plain
    /// generation.
    #[arg(allow_negative_numbers = true, long)]
    strength: f64,
    #[command(flatten)]
    edit: EditArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct EditArgs {
    /// How kept tokens are put back after every step: drawn from the forward process at the
    /// step's noise level (principled for the Markov chain), or held at the source's tokens.
    #[arg(long, value_enum, default_value_t = ReimposeArg::ForwardSample)]
    reimpose: ReimposeArg,
    /// Paste the source's pixels back outside the regenerated region, blending over
    /// --feather pixels inside its edge (the region's own pixels stay decoded).
    #[arg(long)]
    paste_back: bool,
    /// Width in pixels of the paste-back blend (0: a hard edge).
    #[arg(
        allow_negative_numbers = true,
        long,
        default_value_t = 2.0,
        requires = "paste_back"
    )]
    feather: f32,
}

#[derive(Args)]
struct SamplingArgs {
    /// Seed: the same seed gives the same images, bit for bit, on the same machine.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0)]
    seed: u64,
    /// Number of steps (model calls); default: the model's T. With `--sampler diffusers` this
    /// runs only the last S steps of the chain, as diffusers' num_inference_steps does.
    #[arg(allow_negative_numbers = true, long)]
    steps: Option<usize>,
    /// Sampler.
    #[arg(long, value_enum, default_value_t = SamplerChoice::Diffusers)]
    sampler: SamplerChoice,
    /// Classifier-free guidance scale (1 = off). Default: the model's generation_config.json,
    /// else diffusers' 5.
    #[arg(allow_negative_numbers = true, long)]
    guidance_scale: Option<f64>,
    /// Keep the smallest set of classes whose probability reaches this rate (diffusers'
    /// truncation_rate; 1 = keep all). Default: the model's generation_config.json, else 1.
    #[arg(allow_negative_numbers = true, long, conflicts_with = "top_k")]
    truncation_rate: Option<f32>,
    /// Keep only the k most probable classes instead.
    #[arg(allow_negative_numbers = true, long)]
    top_k: Option<usize>,
    /// Images per prompt.
    #[arg(allow_negative_numbers = true, long, default_value_t = 1)]
    num_images: usize,
    /// Images denoised together (memory grows with it); a longer job runs in batches and
    /// writes each batch's images as soon as they are decoded. The images of a seed depend on
    /// the batch size only when the job needs more than one batch.
    #[arg(allow_negative_numbers = true, long, default_value_t = 8)]
    batch_size: usize,
    /// Null condition for guidance.
    #[arg(long, value_enum, default_value_t = NullCondition::Auto)]
    null: NullCondition,
    /// Purity prior weight r (sampler `purity`) [default: 1].
    #[arg(allow_negative_numbers = true, long)]
    prior_weight: Option<f64>,
    /// Maximum positions unmasked per model call (samplers `high-quality`, `purity`; default no limit).
    #[arg(allow_negative_numbers = true, long)]
    unmask_per_call: Option<usize>,
    /// Mask schedule: cosine, linear or arccos (maskgit, halton, random-order, remdm) [default: cosine].
    #[arg(long)]
    unmask_schedule: Option<discrete_diffusion::UnmaskCurve>,
    /// Temperature of committed tokens, 0 = most probable (maskgit, halton, random-order,
    /// remdm, threshold, entropy-bounded) [default: 1].
    #[arg(allow_negative_numbers = true, long)]
    temperature: Option<f64>,
    /// MaskGIT's choice temperature, annealed to 0 over the run (maskgit) [default: 4.5].
    #[arg(allow_negative_numbers = true, long)]
    choice_temperature: Option<f64>,
    /// Commit every masked token whose top probability reaches this (threshold) [default: 0.9].
    #[arg(allow_negative_numbers = true, long)]
    threshold: Option<f64>,
    /// Change a committed token when another class reaches this probability (threshold)
    /// [default: no editing].
    #[arg(allow_negative_numbers = true, long)]
    edit_threshold: Option<f64>,
    /// Entropy bound per call in nats (entropy-bounded) [default: 1].
    #[arg(allow_negative_numbers = true, long)]
    entropy_bound: Option<f64>,
    /// Remasking rate η of committed tokens (remdm) [default: 0.05].
    #[arg(allow_negative_numbers = true, long)]
    remask: Option<f64>,
    /// Corrector calls after each corrected step (predictor-corrector) [default: 1].
    #[arg(allow_negative_numbers = true, long)]
    corrector_steps: Option<usize>,
    /// Number of final predictor steps that are corrected (predictor-corrector) [default: half].
    #[arg(allow_negative_numbers = true, long)]
    corrected_steps: Option<usize>,
}

impl SamplingArgs {
    fn sampler_settings(&self) -> vq_pipeline::SamplerSettings {
        vq_pipeline::SamplerSettings {
            unmask_schedule: self.unmask_schedule,
            temperature: self.temperature,
            choice_temperature: self.choice_temperature,
            threshold: self.threshold,
            edit_threshold: self.edit_threshold,
            entropy_bound: self.entropy_bound,
            remask: self.remask,
            corrector_steps: self.corrector_steps,
            corrected_steps: self.corrected_steps,
        }
    }
}

#[derive(Args)]
struct OutputArgs {
    /// Output PNG (one image) or folder (several images).
    #[arg(long, default_value = "vqd.png")]
    out: PathBuf,
    /// Also write a contact sheet of all images (folder output).
    #[arg(long)]
    contact_sheet: bool,
    /// Also write the denoising as an animated GIF: one frame per model call (every image of
    /// the batch side by side, masked tokens as a checkerboard), the result held at the end.
    #[arg(long)]
    animate: Option<PathBuf>,
    /// Write every image (and the contact sheet and animation) N times larger, nearest-neighbour
    /// (each pixel an N × N square).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    upscale: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReimposeArg {
    ForwardSample,
    KeepData,
}

impl From<ReimposeArg> for Reimpose {
    fn from(r: ReimposeArg) -> Self {
        match r {
            ReimposeArg::ForwardSample => Reimpose::ForwardSample,
            ReimposeArg::KeepData => Reimpose::KeepData,
        }
    }
}

fn parse_box(s: &str) -> Result<(u32, u32, u32, u32), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let values: Result<Vec<u32>, _> = parts.iter().map(|p| p.parse::<u32>()).collect();
    match values {
        Ok(v) if v.len() == 4 => Ok((v[0], v[1], v[2], v[3])),
        _ => Err(format!(
            "expected four non-negative integers x0,y0,x1,y1, got {s:?}"
        )),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum VariantArg {
    Default,
    Fp16,
}

#[derive(Clone, Copy, ValueEnum)]
enum DTypeArg {
    F32,
    F16,
    Bf16,
}

/// The pipeline and its record for the sidecar.
fn load(args: &ModelArgs) -> anyhow::Result<(VqDiffusionPipeline, ModelRecord)> {
    let (root, name, variant, revision) = locate(args)?;
    if vq_pipeline::is_class_conditional_model(&root) {
        anyhow::bail!(
            "{} is a class-conditional or unconditional model: generate with --class (a label, \
             a class name, or `none`: no class, the only choice for an unconditional model) \
             instead of prompts",
            root.display()
        );
    }
    let pipeline = VqDiffusionPipeline::from_pretrained(
        &root,
        LoadOptions {
            device: vq_nn::parse_device(&args.device)?,
            dtype: dtype_of(args.dtype),
            variant,
            int8_transformer: args.int8,
            ..LoadOptions::default()
        },
    )?;
    let record = pipeline.model_record(&name, revision.as_deref());
    Ok((pipeline, record))
}

impl SamplingArgs {
    /// `options` with every sampling flag applied (sampler, images per prompt, guidance,
    /// truncation, steps, the samplers' settings); flags without effect are errors.
    fn apply(&self, mut options: GenerationOptions) -> anyhow::Result<GenerationOptions> {
        options = options
            .num_images_per_prompt(self.num_images)
            .sampler(self.sampler);
        if let Some(r) = self.prior_weight {
            anyhow::ensure!(
                self.sampler == SamplerChoice::Purity,
                "--prior-weight has no effect with the {} sampler (only purity uses it)",
                self.sampler.name()
            );
            options.prior_weight = r;
        }
        if let Some(scale) = self.guidance_scale {
            options.guidance_scale = scale;
        }
        match (self.top_k, self.truncation_rate) {
            (Some(k), _) => options.truncation = Truncation::TopK(k),
            (None, Some(r)) => options.truncation = Truncation::TopR(r),
            (None, None) => {}
        }
        options.steps = self.steps;
        options.unmask_per_call = self.unmask_per_call;
        options.sampler_settings = self.sampler_settings();
        Ok(options)
    }
}

/// The weight dtype a `--dtype` names.
fn dtype_of(arg: DTypeArg) -> candle_core::DType {
    match arg {
        DTypeArg::F32 => candle_core::DType::F32,
        DTypeArg::F16 => candle_core::DType::F16,
        DTypeArg::Bf16 => candle_core::DType::BF16,
    }
}

/// The model's folder (resolved from the hub when needed), its name, the weight variant, and
/// the hub revision (hub models only: a revision for a local folder is an error).
fn locate(args: &ModelArgs) -> anyhow::Result<(PathBuf, String, Variant, Option<String>)> {
    let variant = match args.variant {
        VariantArg::Default => Variant::Default,
        VariantArg::Fp16 => Variant::Fp16,
    };
    let mut hub = HubOptions::from_env();
    hub.offline |= args.offline;
    if let Some(seconds) = args.hub_timeout {
        anyhow::ensure!(
            seconds.is_finite() && seconds > 0.0,
            "--hub-timeout must be a positive number of seconds, got {seconds}"
        );
        hub.timeout = std::time::Duration::from_secs_f64(seconds);
    }
    let local_revision = |what: &str| match &args.revision {
        Some(r) => Err(anyhow::anyhow!(
            "--revision {r} has no effect on {what}: revisions select hub snapshots"
        )),
        None => Ok(()),
    };
    match &args.model {
        Some(model) if convert::is_checkpoint_file(Path::new(model)) => {
            local_revision("a checkpoint file")?;
            let dir = convert::cached_conversion(Path::new(model))?;
            Ok((dir, model.clone(), variant, None))
        }
        Some(model) => {
            let revision = args.revision.clone().unwrap_or_else(|| "main".into());
            let source = ModelSource::parse(model, &revision)?;
            let revision = match &source {
                ModelSource::Local(_) => {
                    local_revision("a local folder")?;
                    None
                }
                ModelSource::Hub { .. } => Some(revision),
            };
            Ok((
                source.resolve(variant, &hub)?,
                model.clone(),
                variant,
                revision,
            ))
        }
        None => {
            local_revision("the embedded model")?;
            let dir = default_model_dir()?;
            let name = format!("embedded:{}", dir.display());
            Ok((dir, name, variant, None))
        }
    }
}

/// Loads the model, runs `job` batch by batch with a progress bar, writes each batch's images
/// as it is decoded, then the sidecar, and prints the timings.
fn run_job(
    model: &ModelArgs,
    sampling: &SamplingArgs,
    output: &OutputArgs,
    prompts: Vec<String>,
    job: impl Fn(
        &VqDiffusionPipeline,
        &GenerationOptions,
        &mut dyn NoiseSource,
        &mut dyn FnMut(&StepEvent) -> vq_pipeline::Result<()>,
    ) -> vq_pipeline::Result<Generation>,
) -> anyhow::Result<()> {
    // Everything about the output is checked before the model loads.
    let total = prompts
        .len()
        .checked_mul(sampling.num_images)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} prompts × --num-images {} overflows",
                prompts.len(),
                sampling.num_images
            )
        })?;
    let plan = OutputPlan::new(&output.out, total, output.contact_sheet)?;
    if let Some(path) = &output.animate {
        check_animation_path(path)?;
        anyhow::ensure!(
            total <= sampling.batch_size,
            "--animate shows one batch; raise --batch-size to {total} (or generate fewer images)"
        );
    }
    let start = Instant::now();
    let (pipeline, record) = load(model)?;
    let load_time = start.elapsed();
    let options = sampling.apply(
        pipeline
            .default_options(prompts.clone())
            .null_condition(sampling.null),
    )?;
    // Every option is checked before any work (edits allow an empty prompt).
    options.validate_allowing_empty_prompts(pipeline.num_timesteps())?;
    let batches = options.batches(sampling.batch_size)?;
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} denoising [{bar:30}] {pos}/{len} {msg} ({per_sec}) eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut noise = SeededNoise::new(sampling.seed);
    let mut frames: Vec<image::RgbImage> = Vec::new();
    let mut frame_error = None;
    let mut log = RunLog::default();
    let mut kept_images = Vec::new();
    let mut first = 0;
    let started = Instant::now();
    let tokens_per_image = pipeline.num_tokens() as f64;
    for (index, batch) in batches.iter().enumerate() {
        let images_before = first as f64;
        let batch_images = (batch.prompts.len() * batch.num_images_per_prompt) as f64;
        let mut on_step = |event: &StepEvent| {
            let calls = event.planned_calls as u64;
            bar.set_length(calls * batches.len() as u64);
            bar.set_position(index as u64 * calls + event.call as u64 + 1);
            let done_tokens = tokens_per_image
                * (images_before * calls as f64 + batch_images * (event.call as f64 + 1.0));
            let batch_note = if batches.len() > 1 {
                format!("batch {}/{} ", index + 1, batches.len())
            } else {
                String::new()
            };
            bar.set_message(format!(
                "{batch_note}t={} {:.0} tokens/s",
                event.t,
                done_tokens / started.elapsed().as_secs_f64().max(1e-9)
            ));
            if output.animate.is_some() {
                match pipeline.decode_preview(event.tokens) {
                    Ok(images) => frames.push(animation_frame(
                        &images,
                        sampling.num_images,
                        output.upscale,
                    )),
                    Err(e) => frame_error = Some(e),
                }
            }
            Ok(())
        };
        let mut result = job(&pipeline, batch, &mut noise, &mut on_step)?;
        if let Some(e) = frame_error.take() {
            return Err(e.into());
        }
        if output.animate.is_some() {
            frames.push(animation_frame(
                &result.images,
                sampling.num_images,
                output.upscale,
            ));
        }
        if output.upscale > 1 {
            result.images = result
                .images
                .iter()
                .map(|img| upscale_nearest(img, output.upscale))
                .collect();
        }
        log.write_batch(&plan, first, &result)?;
        first += result.images.len();
        if plan.wants_contact_sheet() {
            kept_images.extend(result.images);
        }
    }
    bar.finish_and_clear();
    for warning in &log.warnings {
        eprintln!("warning: {warning}");
    }
    let columns = sampling
        .num_images
        .max((total as f64).sqrt().ceil() as usize);
    if let Some(path) = plan.write_contact_sheet(&kept_images, columns)? {
        log.written.push(path);
    }
    if let Some(path) = &output.animate {
        write_animation(path, &frames)?;
        log.written.push(path.clone());
    }
    let mut sidecar = log.sidecar(&options, &record);
    sidecar["batch_size"] = sampling.batch_size.min(total).into();
    sidecar["upscale"] = output.upscale.into();
    let sidecar_path = plan.write_sidecar(&sidecar)?;
    log.written.push(sidecar_path);
    if log.written.len() <= 12 {
        for path in &log.written {
            println!("wrote {}", path.display());
        }
    } else {
        println!(
            "wrote {} files: {} … {}",
            log.written.len(),
            log.written[0].display(),
            log.written[log.written.len() - 1].display()
        );
    }
    let denoise = log.seconds[1];
    println!(
        "load {:.2} s | text {:.2} s | denoise {:.2} s ({} model calls{}, {:.0} tokens/s) | decode {:.2} s",
        load_time.as_secs_f64(),
        log.seconds[0],
        denoise,
        log.model_calls,
        if log.batches > 1 {
            format!(" × {} batches", log.batches)
        } else {
            String::new()
        },
        tokens_per_image * total as f64 * log.model_calls as f64 / denoise.max(1e-9),
        log.seconds[2]
    );
    Ok(())
}

/// `--animate` must name a `.gif` in a folder that exists or can be made.
fn check_animation_path(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gif")),
        "--animate {}: the animation is written as GIF; name a .gif file",
        path.display()
    );
    anyhow::ensure!(!path.is_dir(), "--animate {} is a folder", path.display());
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("--animate {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One animation frame: the batch's images side by side (`columns` per row), upscaled.
fn animation_frame(images: &[image::RgbImage], columns: usize, upscale: u32) -> image::RgbImage {
    let sheet = if images.len() == 1 {
        images[0].clone()
    } else {
        contact_sheet(
            images,
            columns.max((images.len() as f64).sqrt().ceil() as usize),
        )
    };
    upscale_nearest(&sheet, upscale)
}

/// Writes `frames` as a looping GIF (80 ms a frame, the last held 2 s), atomically.
fn write_animation(path: &Path, frames: &[image::RgbImage]) -> anyhow::Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite)?;
        for (i, frame) in frames.iter().enumerate() {
            let delay = if i + 1 == frames.len() { 2000 } else { 80 };
            let rgba = image::DynamicImage::ImageRgb8(frame.clone()).to_rgba8();
            encoder.encode_frame(image::Frame::from_parts(
                rgba,
                0,
                0,
                image::Delay::from_numer_denom_ms(delay, 1),
            ))?;
        }
    }
    write_atomically(path, &bytes)?;
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    if !args.class.is_empty() {
        return class_generate::run(&args);
    }
    run_job(
        &args.model,
        &args.sampling,
        &args.output,
        args.prompts.clone(),
        |pipeline, options, noise, on_step| pipeline.generate(options, noise, on_step),
    )
}

/// Reads an image file as 8-bit RGB (any format and mode the `image` crate reads).
fn read_image(path: &std::path::Path, what: &str) -> anyhow::Result<image::DynamicImage> {
    image::ImageReader::open(path)
        .map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))?
        .decode()
        .map_err(|e| anyhow::anyhow!("{what} {}: not a readable image: {e}", path.display()))
}

fn edit_input(
    image: &std::path::Path,
    strength: f64,
    edit: &EditArgs,
) -> anyhow::Result<EditInput> {
    let image = read_image(image, "image")?.to_rgb8();
    Ok(EditInput {
        image,
        mask: None,
        strength,
        reimpose: edit.reimpose.into(),
        paste_back: edit.paste_back.then_some(edit.feather),
    })
}

fn inpaint(args: InpaintArgs) -> anyhow::Result<()> {
    let mut input = edit_input(&args.image, args.strength, &args.edit)?;
    input.mask = Some(match (&args.mask, args.r#box) {
        (Some(path), _) => read_image(path, "mask")?.to_luma8(),
        (None, Some(b)) => box_mask(input.image.width(), input.image.height(), b)?,
        (None, None) => anyhow::bail!("give the region with --mask or --box"),
    });
    run_job(
        &args.model,
        &args.sampling,
        &args.output,
        args.prompts.clone(),
        |pipeline, options, noise, on_step| pipeline.edit(options, &input, noise, on_step),
    )
}

fn vary(args: VaryArgs) -> anyhow::Result<()> {
    let input = edit_input(&args.image, args.strength, &args.edit)?;
    let prompts = if args.prompts.is_empty() {
        vec![String::new()]
    } else {
        args.prompts.clone()
    };
    run_job(
        &args.model,
        &args.sampling,
        &args.output,
        prompts,
        |pipeline, options, noise, on_step| pipeline.edit(options, &input, noise, on_step),
    )
}

fn main() -> ExitCode {
    // Errors print their whole message (cause included) once: no "Caused by" echo.
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(args) => generate(args),
        Command::Inpaint(args) => inpaint(args),
        Command::Vary(args) => vary(args),
        Command::Train(command) => train::run(command),
        Command::Convert(args) => convert::run(args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => {
            let (pipeline, record) = load(&args.model)?;
            serve::serve(
                pipeline,
                record,
                &args.host,
                args.port,
                serve::Limits {
                    max_queue: args.max_queue,
                    concurrency: args.concurrency,
                    max_images: args.max_images,
                    max_body: args.max_body_mib << 20,
                },
                args.upscale,
            )
        }
        Command::Check(args) if args.weights => {
            let (pipeline, _) = load(&args.model)?;
            println!(
                "ok: {} (every weight read and finite; T = {}, {} tokens per image, {} null \
                 condition)",
                pipeline.files().root.display(),
                pipeline.num_timesteps(),
                pipeline.num_tokens(),
                if pipeline.has_learned_null() {
                    "learned"
                } else {
                    "empty-prompt"
                }
            );
            Ok(())
        }
        Command::Check(args) => {
            let (root, _, variant, _) = locate(&args.model)?;
            let files = ModelFiles::locate(&root, variant)?;
            let problems = check_consistency(&files);
            anyhow::ensure!(
                problems.is_empty(),
                "{}: {}",
                root.display(),
                problems.join("; ")
            );
            println!(
                "ok: {} (files and configs; --weights also reads every tensor)",
                root.display()
            );
            Ok(())
        }
    }
}
