//! `vqd` — VQ-Diffusion text-to-image from the command line.
//!
//! ```text
//! vqd generate "a red circle in the top left" --out out.png --seed 0
//! vqd generate "a teddy bear playing in the pool" --model microsoft/vq-diffusion-ithq --out bear.png
//! ```
//!
//! Without `--model` it uses the embedded shape-world model (compiled into the binary from
//! `models/shape-world/`, unpacked to the user's cache on first use).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use discrete_diffusion::{SeededNoise, Truncation};
use indicatif::{ProgressBar, ProgressStyle};
use vq_pipeline::{
    HubOptions, LoadOptions, ModelSource, NullCondition, SamplerChoice, Variant,
    VqDiffusionPipeline, default_model_dir, write_outputs,
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
    /// Output PNG (one image) or folder (several images).
    #[arg(long, default_value = "vqd.png")]
    out: PathBuf,
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
    /// Also write a contact sheet of all images (folder output).
    #[arg(long)]
    contact_sheet: bool,
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

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let (pipeline, model_name) = load(&args.model)?;
    let load_time = start.elapsed();
    let mut options = pipeline
        .default_options(args.prompts.clone())
        .num_images_per_prompt(args.num_images)
        .sampler(args.sampler)
        .null_condition(args.null)
        .prior_weight(args.prior_weight);
    if let Some(scale) = args.guidance_scale {
        options.guidance_scale = scale;
    }
    match (args.top_k, args.truncation_rate) {
        (Some(k), _) => options.truncation = Truncation::TopK(k),
        (None, Some(r)) => options.truncation = Truncation::TopR(r),
        (None, None) => {}
    }
    options.steps = args.steps;
    options.unmask_per_call = args.unmask_per_call;
    let tokens_per_call = (args.prompts.len() * args.num_images * pipeline.num_tokens()) as f64;
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} denoising [{bar:30}] {pos}/{len} t={msg} ({per_sec}) eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut noise = SeededNoise::new(args.seed);
    let started = Instant::now();
    let result = pipeline.generate(&options, &mut noise, |event| {
        let done = event.call as f64 + 1.0;
        bar.set_length(event.planned_calls as u64);
        bar.set_position(event.call as u64 + 1);
        bar.set_message(format!(
            "t={} {:.0} tokens/s",
            event.t,
            tokens_per_call * done / started.elapsed().as_secs_f64().max(1e-9)
        ));
        Ok(())
    })?;
    bar.finish_and_clear();
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
    let written = write_outputs(
        &args.out,
        &result,
        &options,
        &model_name,
        args.contact_sheet,
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
