//! The denoising transformer at the ITHQ shape (width 1408 = 16 heads × 88, 32 × 32 = 1024
//! image tokens, 77 × 512 text states, 4097 classes), batch 2 (the classifier-free-guidance
//! batch of one image): per-layer time of the block stack, a full guided denoising step with
//! all 36 layers, and the peak memory of loading the full-size weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use discrete_diffusion::{
    MaskAndReplace, Prediction, SeededNoise, Timesteps, Truncation, reverse_step,
};
use vq_transformer::{Transformer2DConfig, Transformer2DModel};

use crate::measure::{Measurement, peak_rss_mib, rss_mib, time_reps};
use crate::random_weights::{specs_of, write_safetensors};
use crate::{Options, measurement};

/// Timestep the benchmarks evaluate (mid-chain).
pub const T: usize = 50;

/// Forward FLOPs of `layers` blocks at batch `b` (the formula of the diffusers comparison).
pub fn block_flops(cfg: &Transformer2DConfig, b: usize, layers: usize) -> f64 {
    let (d, n, l, c) = (
        cfg.inner_dim() as f64,
        cfg.num_latent_pixels() as f64,
        77.0,
        cfg.cross_attention_dim.unwrap_or(0) as f64,
    );
    let b = b as f64;
    let self_attn = 4.0 * 2.0 * b * n * d * d + 2.0 * 2.0 * b * n * n * d;
    let cross = 2.0 * 2.0 * b * n * d * d + 2.0 * 2.0 * b * l * c * d + 2.0 * 2.0 * b * n * l * d;
    let ff = 2.0 * 2.0 * b * n * d * 4.0 * d;
    (self_attn + cross + ff) * layers as f64
}

/// FLOPs of the output head at batch `b`.
pub fn head_flops(cfg: &Transformer2DConfig, b: usize) -> f64 {
    2.0 * b as f64
        * cfg.num_latent_pixels() as f64
        * cfg.inner_dim() as f64
        * cfg.num_classes() as f64
}

/// The folder of a random ITHQ-shape transformer with `layers` layers (created on first use):
/// `transformer/{config.json, diffusion_pytorch_model.safetensors}` and `inputs.safetensors`
/// (`x_t` (2, 1024) with every other token masked, L2-normalised states (2, 77, 512)).
pub fn prepare(work: &Path, layers: usize) -> anyhow::Result<PathBuf> {
    let dir = work.join(format!("transformer-{layers}"));
    let weights = dir.join("transformer/diffusion_pytorch_model.safetensors");
    if weights.is_file() && dir.join("inputs.safetensors").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.join("transformer"))?;
    let cfg = Transformer2DConfig::ithq(layers);
    let mut json = serde_json::to_value(&cfg)?;
    json["_class_name"] = "Transformer2DModel".into();
    json["_diffusers_version"] = "0.42.1".into();
    json["norm_type"] = "ada_norm".into();
    std::fs::write(
        dir.join("transformer/config.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    // diffusers' init for the benchmark: N(0, 0.02)-like weights and biases, unit-scale
    // embeddings, norm scales around 1.
    let specs = specs_of(
        |vb| Ok(Transformer2DModel::new(vb, &cfg)?),
        |name, shape| {
            if name.ends_with("emb.weight") {
                (0.0, 1.0)
            } else if name.contains("norm") && name.ends_with("weight") && shape.len() == 1 {
                (1.0, 0.02)
            } else {
                (0.0, 0.02)
            }
        },
    )?;
    write_safetensors(&weights, &specs, "F32", 7)?;
    let dev = Device::Cpu;
    let ids: Vec<i64> = (0..2 * 1024)
        .map(|i| {
            if i % 2 == 0 {
                4096
            } else {
                (i * 7919 % 4096) as i64
            }
        })
        .collect();
    let x_t = Tensor::from_vec(ids, (2, 1024), &dev)?;
    let states = Tensor::from_vec(
        crate::random_weights::uniform(2 * 77 * 512, 0.0, 1.0, 11),
        (2, 77, 512),
        &dev,
    )?;
    let states = clip_text::l2_normalise_tokens(&states)?;
    candle_core::safetensors::save(
        &[
            ("x_t".to_string(), x_t),
            ("encoder_hidden_states".to_string(), states),
        ]
        .into_iter()
        .collect(),
        dir.join("inputs.safetensors"),
    )?;
    Ok(dir)
}

fn inputs(dir: &Path) -> anyhow::Result<(Tensor, Tensor)> {
    let t = candle_core::safetensors::load(dir.join("inputs.safetensors"), &Device::Cpu)?;
    Ok((
        t["x_t"].to_dtype(DType::U32)?,
        t["encoder_hidden_states"].clone(),
    ))
}

fn storage(variant: &str) -> anyhow::Result<DType> {
    Ok(match variant {
        "f32" | "int8" => DType::F32,
        "bf16" => DType::BF16,
        other => anyhow::bail!("variant {other}: f32, bf16 or int8"),
    })
}

/// The prepared transformer in `dir` as `variant` stores it (`int8`: the projections
/// quantised while loading, the rest f32).
fn load_variant(dir: &Path, variant: &str, o: &Options) -> anyhow::Result<Transformer2DModel> {
    let dir = dir.join("transformer");
    let dtype = storage(variant)?;
    Ok(if variant == "int8" {
        let config = Transformer2DConfig::from_file(dir.join("config.json"))?;
        let weights = dir.join("diffusion_pytorch_model.safetensors");
        Transformer2DModel::from_weights_int8(&config, weights, dtype, &o.device)?
    } else {
        Transformer2DModel::from_pretrained(dir, dtype, &o.device)?
    })
}

/// What the layer's projections multiply in, for the report.
fn products(variant: &str) -> &'static str {
    match variant {
        "int8" if vq_nn::int8_native() => "int8 (VNNI)",
        "int8" => "int8 (as f32: no VNNI)",
        "bf16" if vq_nn::native_bf16() => "bf16",
        "bf16" => "bf16 widened to f32",
        _ => "f32",
    }
}

/// Per-layer time of the block stack (embedding + `layers` blocks, cached cross-attention).
pub fn layer(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let dir = prepare(&o.work, o.layers)?;
    let model = load_variant(&dir, variant, o)?;
    let (x_t, states) = inputs(&dir)?;
    let context = model.prepare_context(&states.to_device(&o.device)?)?;
    let t = Timesteps::Shared(T);
    let seconds = time_reps(1, o.reps, || {
        let h = model.hidden_states(&x_t, &t, Some(&context), false)?;
        o.sync(&h)
    })?;
    let per_layer: Vec<f64> = seconds.iter().map(|s| s / o.layers as f64).collect();
    Ok(measurement(
        "transformer layer",
        variant,
        per_layer,
        Some(block_flops(model.config(), 2, 1)),
        format!(
            "activations {:?}, products {}, {} layers timed",
            model.compute_dtype(),
            products(variant),
            o.layers
        ),
    ))
}

/// One full guided denoising step at the ITHQ shape: the transformer on `[uncond; cond]`,
/// guidance (scale 5), truncation (r = 0.86), the −70 floor, the posterior and Gumbel-max.
pub fn denoising_step(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let dir = prepare(&o.work, o.step_layers)?;
    let model = load_variant(&dir, variant, o)?;
    let (x_t, states) = inputs(&dir)?;
    let cond = x_t.narrow(0, 0, 1)?;
    let context = model.prepare_context(&states.to_device(&o.device)?)?;
    let chain = MaskAndReplace::released(4096, 100)?;
    let mut noise = SeededNoise::new(0);
    let seconds = time_reps(0, o.step_reps, || {
        let (unconditional, conditional) = model.guidance_halves(&cond, T, &context)?;
        let prediction = Prediction::Guided {
            unconditional,
            conditional,
            scale: 5.0,
        };
        let x = reverse_step(
            &chain,
            prediction,
            &cond,
            T,
            Truncation::TopR(0.86),
            &mut noise,
        )?;
        o.sync(&x)
    })?;
    Ok(measurement(
        "denoising step",
        variant,
        seconds,
        Some(block_flops(model.config(), 2, o.step_layers) + head_flops(model.config(), 2)),
        format!(
            "{} layers, guidance 5, top-r 0.86, activations {:?}, products {}",
            o.step_layers,
            model.compute_dtype(),
            products(variant)
        ),
    ))
}

/// Peak memory of loading the full-size (36-layer) ITHQ transformer (f32 file) as `variant`
/// stores it.
pub fn load(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let dir = prepare(&o.work, 36)?;
    let file = dir.join("transformer/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::metadata(&file)?.len() as f64;
    let (before, rss_before) = (peak_rss_mib(), rss_mib());
    let start = std::time::Instant::now();
    let model = load_variant(&dir, variant, o)?;
    let seconds = start.elapsed().as_secs_f64();
    let held = rss_mib() - rss_before;
    drop(model);
    let mib = |b: f64| b / 1048576.0;
    Ok(measurement(
        "load ITHQ transformer",
        variant,
        vec![seconds],
        None,
        format!(
            "file {:.0} MiB; held after loading {held:.0} MiB; peak RSS {:.0} MiB = {:.3} x the \
             file (RSS before loading {before:.0} MiB)",
            mib(bytes),
            peak_rss_mib(),
            peak_rss_mib() / mib(bytes)
        ),
    ))
}
