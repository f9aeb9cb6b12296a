//! `vqd` — VQ-Diffusion text-to-image from the command line.
//!
//! ```text
//! vqd generate "a red circle in the top left" --out out.png --seed 0
//! vqd generate "a teddy bear playing in the pool" --model microsoft/vq-diffusion-ithq --out bear.png
//! vqd inpaint --image scene.png --box 0,0,16,16 "a blue square in the top left" --out edited.png
//! vqd vary --image scene.png --strength 0.5 --out variation.png
//! ```
//!
//! Without `--model` it uses the embedded shape-world model (compiled into the binary from
//! `models/shape-world/`, unpacked to the user's cache on first use).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use discrete_diffusion::{NoiseSource, Reimpose, SeededNoise, StepEvent, Truncation};
use indicatif::{ProgressBar, ProgressStyle};
use vq_pipeline::{
    EditInput, Generation, GenerationOptions, HubOptions, LoadOptions, ModelSource, NullCondition,
    SamplerChoice, Variant, VqDiffusionPipeline, box_mask, default_model_dir, write_outputs,
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
    /// Check a model folder or hub repository without generating (every problem is listed).
    Check(ModelArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// A local folder in the diffusers layout, or a Hugging Face repo id
    /// (e.g. microsoft/vq-diffusion-ithq), resolved through the Hugging Face cache.
    /// Default: the embedded shape-world model (models/shape-world, or $VQD_DEFAULT_MODEL).
    #[arg(long)]
    model: Option<String>,
    /// Hub revision (branch, tag or commit).
    #[arg(long, default_value = "main")]
    revision: String,
    /// Never download; use only the local Hugging Face cache (also: HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
    /// Weight files to read: the default ones or the hub's `*.fp16.*` copies.
    #[arg(long, value_enum, default_value_t = VariantArg::Default)]
    variant: VariantArg,
    /// Storage precision of the weights in memory (activations are f32 on the CPU).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype: DTypeArg,
    /// Device: cpu, cuda, cuda:N, metal (GPU devices need a build with `--features cuda` or
    /// `--features metal`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct GenerateArgs {
    /// The prompts (one image batch entry each).
    #[arg(required = true)]
    prompts: Vec<String>,
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
    #[arg(long, default_value_t = 1.0)]
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
    #[arg(long)]
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
    #[arg(long, default_value_t = 2.0, requires = "paste_back")]
    feather: f32,
}

#[derive(Args)]
struct SamplingArgs {
    /// Seed: the same seed gives the same images, bit for bit, on the same machine.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of steps (model calls); default: the model's T. With `--sampler diffusers` this
    /// runs only the last S steps of the chain, as diffusers' num_inference_steps does.
    #[arg(long)]
    steps: Option<usize>,
    /// Sampler.
    #[arg(long, value_enum, default_value_t = SamplerChoice::Diffusers)]
    sampler: SamplerChoice,
    /// Classifier-free guidance scale (1 = off). Default: the model's generation_config.json,
    /// else diffusers' 5.
    #[arg(long)]
    guidance_scale: Option<f64>,
    /// Keep the smallest set of classes whose probability reaches this rate (diffusers'
    /// truncation_rate; 1 = keep all). Default: the model's generation_config.json, else 1.
    #[arg(long, conflicts_with = "top_k")]
    truncation_rate: Option<f32>,
    /// Keep only the k most probable classes instead.
    #[arg(long)]
    top_k: Option<usize>,
    /// Images per prompt.
    #[arg(long, default_value_t = 1)]
    num_images: usize,
    /// Null condition for guidance.
    #[arg(long, value_enum, default_value_t = NullCondition::Auto)]
    null: NullCondition,
    /// Purity prior weight r (sampler `purity`).
    #[arg(long, default_value_t = 1.0)]
    prior_weight: f64,
    /// Maximum positions unmasked per model call (samplers `high-quality`, `purity`; default no limit).
    #[arg(long)]
    unmask_per_call: Option<usize>,
}

#[derive(Args)]
struct OutputArgs {
    /// Output PNG (one image) or folder (several images).
    #[arg(long, default_value = "vqd.png")]
    out: PathBuf,
    /// Also write a contact sheet of all images (folder output).
    #[arg(long)]
    contact_sheet: bool,
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

/// The pipeline and the model's name as the user knows it (for the JSON sidecar).
fn load(args: &ModelArgs) -> anyhow::Result<(VqDiffusionPipeline, String)> {
    let variant = match args.variant {
        VariantArg::Default => Variant::Default,
        VariantArg::Fp16 => Variant::Fp16,
    };
    let dtype = match args.dtype {
        DTypeArg::F32 => candle_core::DType::F32,
        DTypeArg::F16 => candle_core::DType::F16,
        DTypeArg::Bf16 => candle_core::DType::BF16,
    };
    let mut hub = HubOptions::from_env();
    hub.offline |= args.offline;
    let (root, name) = match &args.model {
        Some(model) => (
            ModelSource::parse(model, &args.revision)?.resolve(variant, &hub)?,
            model.clone(),
        ),
        None => {
            let dir = default_model_dir()?;
            let name = format!("embedded:{}", dir.display());
            (dir, name)
        }
    };
    let pipeline = VqDiffusionPipeline::from_pretrained(
        &root,
        LoadOptions {
            device: vq_nn::parse_device(&args.device)?,
            dtype,
            variant,
            ..LoadOptions::default()
        },
    )?;
    Ok((pipeline, name))
}

/// Loads the model, runs `job` with a progress bar, writes the outputs and prints the timings.
fn run_job(
    model: &ModelArgs,
    sampling: &SamplingArgs,
    output: &OutputArgs,
    prompts: Vec<String>,
    job: impl FnOnce(
        &VqDiffusionPipeline,
        &GenerationOptions,
        &mut dyn NoiseSource,
        &mut dyn FnMut(&StepEvent) -> vq_pipeline::Result<()>,
    ) -> vq_pipeline::Result<Generation>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let (pipeline, model_name) = load(model)?;
    let load_time = start.elapsed();
    let mut options = pipeline
        .default_options(prompts.clone())
        .num_images_per_prompt(sampling.num_images)
        .sampler(sampling.sampler)
        .null_condition(sampling.null)
        .prior_weight(sampling.prior_weight);
    if let Some(scale) = sampling.guidance_scale {
        options.guidance_scale = scale;
    }
    match (sampling.top_k, sampling.truncation_rate) {
        (Some(k), _) => options.truncation = Truncation::TopK(k),
        (None, Some(r)) => options.truncation = Truncation::TopR(r),
        (None, None) => {}
    }
    options.steps = sampling.steps;
    options.unmask_per_call = sampling.unmask_per_call;
    let tokens_per_call = (prompts.len() * sampling.num_images * pipeline.num_tokens()) as f64;
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} denoising [{bar:30}] {pos}/{len} t={msg} ({per_sec}) eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut noise = SeededNoise::new(sampling.seed);
    let started = Instant::now();
    let mut on_step = |event: &StepEvent| {
        let done = event.call as f64 + 1.0;
        bar.set_length(event.planned_calls as u64);
        bar.set_position(event.call as u64 + 1);
        bar.set_message(format!(
            "t={} {:.0} tokens/s",
            event.t,
            tokens_per_call * done / started.elapsed().as_secs_f64().max(1e-9)
        ));
        Ok(())
    };
    let result = job(&pipeline, &options, &mut noise, &mut on_step)?;
    bar.finish_and_clear();
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
    let written = write_outputs(
        &output.out,
        &result,
        &options,
        &model_name,
        output.contact_sheet,
    )?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    let denoise = result.timings.denoise.as_secs_f64();
    println!(
        "load {:.2} s | text {:.2} s | denoise {:.2} s ({} model calls, {:.0} tokens/s) | decode {:.2} s",
        load_time.as_secs_f64(),
        result.timings.text.as_secs_f64(),
        denoise,
        result.model_calls,
        tokens_per_call * result.model_calls as f64 / denoise.max(1e-9),
        result.timings.decode.as_secs_f64()
    );
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
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
        Command::Check(args) => {
            let (pipeline, _) = load(&args)?;
            println!(
                "ok: {} (T = {}, {} tokens per image, {} null condition)",
                pipeline.files().root.display(),
                discrete_diffusion::Transition::num_timesteps(pipeline.chain()),
                pipeline.num_tokens(),
                if pipeline.has_learned_null() {
                    "learned"
                } else {
                    "empty-prompt"
                }
            );
            Ok(())
        }
    }
}
