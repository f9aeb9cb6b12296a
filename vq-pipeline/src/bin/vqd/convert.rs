//! `vqd convert --from original CHECKPOINT.pth --out DIR`: an original microsoft/VQ-Diffusion
//! checkpoint (and optionally its separate VQ-GAN) as a diffusers-layout folder
//! (`vq_pipeline::convert_original`; docs/original-checkpoints.md), checked afterwards by loading
//! every weight of the result.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::DType;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use vq_pipeline::{
    ClassConditionalPipeline, ConvertOptions, LoadOptions, RemapChoice, VqDiffusionPipeline,
    convert_original, is_class_conditional_model,
};

/// Where a checkpoint comes from.
#[derive(Clone, Copy, ValueEnum)]
pub enum ConvertFrom {
    /// A training checkpoint of microsoft/VQ-Diffusion (`CC_pretrained.pth`,
    /// `coco_learnable.pth`, `ithq_learnable.pth`, ...).
    Original,
}

/// Storage precision of the converted transformer and text encoder.
#[derive(Clone, Copy, ValueEnum)]
pub enum ConvertDtype {
    F32,
    F16,
    Bf16,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// The checkpoint's format.
    #[arg(long, value_enum, default_value = "original")]
    from: ConvertFrom,
    /// The checkpoint (`*.pth`; read lazily: the optimiser state is never loaded).
    checkpoint: PathBuf,
    /// The VQ-GAN file (`taming_f8_8192_openimages_last.pth`, `ithq_vqvae.pth`, ...). Default:
    /// the VQ-GAN stored inside the checkpoint (`content_codec`).
    #[arg(long)]
    vqvae: Option<PathBuf>,
    /// The code-remap table (`full_to_quantize`, e.g. `taming_vqvae_2887.pt`). Default: the
    /// matching table of the release, shipped with vqd.
    #[arg(long)]
    remap: Option<PathBuf>,
    /// A folder with the CLIP BPE files vocab.json and merges.txt. Default: the embedded
    /// model's (the same OpenAI vocabulary).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The folder to write (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Storage precision of the transformer and text encoder (the VQ-VAE stays f32).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: ConvertDtype,
    /// Use the plain weights even when the checkpoint has an EMA copy (the original inference
    /// uses the EMA copy).
    #[arg(long)]
    no_ema: bool,
    /// The original YAML config the checkpoint was trained with (e.g. `configs/coco_tune.yaml`):
    /// supplies the head counts and token grid; every size it states is checked against the
    /// checkpoint.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Attention heads of the denoiser (not stored in the file) [default: the config's n_head,
    /// else 16, as in every released model].
    #[arg(long)]
    heads: Option<usize>,
    /// Attention heads of the text encoder [default: the config's CLIP model, else width / 64,
    /// OpenAI's rule: 8].
    #[arg(long)]
    text_heads: Option<usize>,
    /// GroupNorm groups of the VQ-GAN (not stored; 32 in every released VQ-GAN).
    #[arg(long, default_value_t = 32)]
    vq_norm_groups: usize,
    /// Image side of a class-conditional model (not stored): with the VQ-GAN it gives the token
    /// grid [default: the config's token_shape, else 256 as for ImageNet].
    #[arg(long)]
    image_size: Option<usize>,
    /// Class labels of a class-conditional model [default: 1000 for a 1001-row class table
    /// (learned null row), else the table's rows (mean-row null)].
    #[arg(long)]
    class_labels: Option<usize>,
    /// Skip loading the converted folder afterwards.
    #[arg(long)]
    no_verify: bool,
}

/// Whether `path` is an original checkpoint file (`--model CHECKPOINT.pth`) rather than a model
/// folder or hub id.
pub fn is_checkpoint_file(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "pth" | "pt" | "ckpt"))
}

/// `--model CHECKPOINT.pth`: the checkpoint converted with the release's defaults (its own
/// VQ-GAN, the shipped code-remap tables, EMA weights) into the cache, once per file (the
/// folder is named by the file's path, size and modification time).
pub fn cached_conversion(checkpoint: &Path) -> anyhow::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(checkpoint)?;
    let absolute = std::fs::canonicalize(checkpoint)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = Sha256::digest(format!("{}|{}|{modified}", absolute.display(), meta.len()));
    let key: String = key.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let cache = vq_pipeline::cache_dir().ok_or_else(|| {
        anyhow::anyhow!("no cache folder for the converted checkpoint: set VQD_CACHE or HOME")
    })?;
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = cache.join("converted").join(format!("{stem}-{key}"));
    if dir.join("model_index.json").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache.join("converted"))?;
    eprintln!(
        "converting {} once into {} (vqd convert gives every option)",
        checkpoint.display(),
        dir.display()
    );
    convert_original(checkpoint, &dir, &ConvertOptions::default())?;
    Ok(dir)
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let ConvertFrom::Original = args.from;
    let options = ConvertOptions {
        vqvae: args.vqvae,
        remap: args.remap.map_or(RemapChoice::Released, RemapChoice::File),
        tokenizer: args.tokenizer,
        dtype: match args.dtype {
            ConvertDtype::F32 => DType::F32,
            ConvertDtype::F16 => DType::F16,
            ConvertDtype::Bf16 => DType::BF16,
        },
        use_ema: !args.no_ema,
        config: args.config,
        heads: args.heads,
        text_heads: args.text_heads,
        vq_norm_groups: args.vq_norm_groups,
        image_size: args.image_size,
        class_labels: args.class_labels,
    };
    let spinner = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner.set_message(format!("converting {}", args.checkpoint.display()));
    let start = Instant::now();
    let report = convert_original(&args.checkpoint, &args.out, &options);
    spinner.finish_and_clear();
    let report = report?;
    let t = &report.transformer;
    println!(
        "{}: {:?} denoiser, {} blocks × width {}, {} classes, T = {}, {} null embedding, {} weights",
        args.checkpoint.display(),
        t.family,
        t.layers,
        t.width,
        t.classes,
        t.timesteps,
        if report.learned_null {
            "learned"
        } else {
            "empty-prompt"
        },
        if report.used_ema { "EMA" } else { "plain" },
    );
    println!(
        "VQ-GAN: {:?} quantizer, {} codes{} (from {})",
        report.vqgan.quantizer,
        report.vqgan.codebook_rows,
        report
            .remap
            .as_ref()
            .map(|r| format!(
                " → {} classes through {}",
                r.quantize_to_full.len(),
                r.source
            ))
            .unwrap_or_default(),
        report.vqgan_file.display()
    );
    if report.schedule_checked {
        println!("schedule buffers: equal to the released alpha1 schedule");
    }
    println!(
        "wrote {} ({} tensors) in {:.1} s",
        args.out.display(),
        report.tensors_written,
        start.elapsed().as_secs_f64()
    );
    if !args.no_verify {
        if is_class_conditional_model(&args.out) {
            let p = ClassConditionalPipeline::from_pretrained(&args.out, LoadOptions::default())?;
            let c = p.config();
            println!(
                "verified: the class-conditional model loads ({} classes, {} null class, {}×{} \
                 tokens)",
                c.num_labels,
                if c.has_learned_null() {
                    "learned"
                } else {
                    "mean-row"
                },
                c.sample_size,
                c.sample_size
            );
        } else {
            VqDiffusionPipeline::from_pretrained(&args.out, LoadOptions::default())?;
            println!("verified: the folder loads (every weight read and finite)");
        }
    }
    Ok(())
}
