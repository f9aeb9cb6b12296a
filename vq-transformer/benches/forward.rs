//! One forward pass of the transformer at the ITHQ shape (width 1408 = 16 heads × 88, 32×32 =
//! 1024 tokens, 77×512 text states, 4097 classes) with a reduced number of layers, batch 2
//! (the classifier-free-guidance batch of one image), on the CPU.
//!
//! ```text
//! cargo bench -p vq-transformer --bench forward                    # random weights, 2 layers
//! cargo bench -p vq-transformer --bench forward -- --layers 4 --reps 5
//! cargo bench -p vq-transformer --bench forward -- --dir DIR --dtype bf16   # weights + inputs
//! ```
//!
//! With `--dir` it loads `DIR/transformer/` (a diffusers folder) and `DIR/inputs.safetensors`
//! written by `benches/compare_diffusers.py`, which runs diffusers and this binary back to
//! back, and reports the deviation from diffusers' output. Prints one `RESULT {json}` line.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use discrete_diffusion::Timesteps;
use vq_transformer::{Transformer2DConfig, Transformer2DModel};

struct Args {
    dir: Option<String>,
    layers: usize,
    reps: usize,
    dtype: DType,
}

fn args() -> Args {
    let mut a = Args {
        dir: None,
        layers: 2,
        reps: 3,
        dtype: DType::F32,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--dir" => a.dir = Some(value),
            "--layers" => a.layers = value.parse().expect("--layers N"),
            "--reps" => a.reps = value.parse().expect("--reps N"),
            "--dtype" => {
                a.dtype = match value.as_str() {
                    "f32" => DType::F32,
                    "bf16" => DType::BF16,
                    "f16" => DType::F16,
                    other => panic!("--dtype {other}: f32, bf16 or f16"),
                }
            }
            _ => {
                i += 1;
                continue; // `--bench` and friends from cargo
            }
        }
        i += 2;
    }
    a
}

/// Forward FLOPs (multiply-adds × 2) of the blocks and of the head.
fn flops(cfg: &Transformer2DConfig, b: usize, l: usize) -> (f64, f64) {
    let (d, n, c) = (
        cfg.inner_dim() as f64,
        cfg.num_latent_pixels() as f64,
        cfg.cross_attention_dim.unwrap_or(0) as f64,
    );
    let (b, l) = (b as f64, l as f64);
    let self_attn = 4.0 * 2.0 * b * n * d * d + 2.0 * 2.0 * b * n * n * d;
    let cross = 2.0 * 2.0 * b * n * d * d + 2.0 * 2.0 * b * l * c * d + 2.0 * 2.0 * b * n * l * d;
    let ff = 2.0 * 2.0 * b * n * d * 4.0 * d;
    let head = 2.0 * b * n * d * cfg.num_classes() as f64;
    ((self_attn + cross + ff) * cfg.num_layers as f64, head)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (Vec<f64>, T) {
    let mut out = f(); // warm-up
    let mut times = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        out = f();
        times.push(start.elapsed().as_secs_f64());
    }
    (times, out)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() -> anyhow::Result<()> {
    let a = args();
    let dev = Device::Cpu;
    let load_start = Instant::now();
    let (model, x_t, states, t, expected) = match &a.dir {
        Some(dir) => {
            let model = Transformer2DModel::from_pretrained(dir, a.dtype, &dev)?;
            let inputs = candle_core::safetensors::load(format!("{dir}/inputs.safetensors"), &dev)?;
            let t = inputs["timestep"].to_dtype(DType::U32)?.to_vec0::<u32>()? as usize;
            (
                model,
                inputs["x_t"].to_dtype(DType::U32)?,
                inputs["encoder_hidden_states"].clone(),
                t,
                inputs.get("log_p_x_0").cloned(),
            )
        }
        None => {
            let cfg = Transformer2DConfig::ithq(a.layers);
            // Random weights from a VarMap, detached so that nothing tracks gradients (the
            // inference path with fused kernels).
            let varmap = VarMap::new();
            Transformer2DModel::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg)?;
            let weights: HashMap<String, Tensor> = varmap
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| Ok((k.clone(), (v.as_tensor() * 0.05)?.detach())))
                .collect::<candle_core::Result<_>>()?;
            let model =
                Transformer2DModel::new(VarBuilder::from_tensors(weights, a.dtype, &dev), &cfg)?;
            let ids: Vec<u32> = (0..2048u32)
                .map(|i| if i % 2 == 0 { 4096 } else { i * 37 % 4096 })
                .collect();
            let x_t = Tensor::from_vec(ids, (2, 1024), &dev)?;
            let states = Tensor::randn(0f32, 1.0, (2, 77, 512), &dev)?;
            (model, x_t, states, 50, None)
        }
    };
    let load_s = load_start.elapsed().as_secs_f64();
    eprintln!("peak RSS after load: {:.0} MB", peak_rss_mb());
    let cfg = model.config().clone();
    let (block_flops, head_flops) = flops(&cfg, 2, states.dim(1)?);
    let t = Timesteps::Shared(t);

    if std::env::var("VQ_BENCH_TRACE").is_ok() {
        let ctx = model.prepare_context(&states)?;
        eprintln!("peak RSS after context: {:.0} MB", peak_rss_mb());
        let s = Instant::now();
        model.hidden_states(&x_t, &t, Some(&ctx), false)?;
        eprintln!(
            "blocks {:.2}s, peak RSS {:.0} MB",
            s.elapsed().as_secs_f64(),
            peak_rss_mb()
        );
    }
    let (full, out) = time(a.reps, || model.forward(&x_t, &t, &states).unwrap());
    let context = model.prepare_context(&states)?;
    let (cached, _) = time(a.reps, || {
        model.forward_with_context(&x_t, &t, &context).unwrap()
    });
    let (blocks, _) = time(a.reps, || {
        model
            .hidden_states(&x_t, &t, Some(&context), false)
            .unwrap()
    });
    let max_dev = match &expected {
        Some(e) => Some((out - e)?.abs()?.max_all()?.to_scalar::<f32>()?),
        None => None,
    };
    let layers = cfg.num_layers as f64;
    let result = serde_json::json!({
        "impl": "vq-transformer",
        "storage_dtype": format!("{:?}", a.dtype).to_lowercase(),
        "compute_dtype": format!("{:?}", model.compute_dtype()).to_lowercase(),
        "layers": cfg.num_layers,
        "threads": candle_core::utils::get_num_threads(),
        "load_s": load_s,
        "forward_s": full,
        "forward_cached_s": cached,
        "blocks_cached_s": blocks,
        "per_layer_s": min(&blocks) / layers,
        "forward_gflops": (block_flops + head_flops) / min(&full) / 1e9,
        "blocks_gflops": block_flops / min(&blocks) / 1e9,
        "gflop_per_forward": (block_flops + head_flops) / 1e9,
        "max_abs_dev_vs_diffusers": max_dev,
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("RESULT {result}");
    Ok(())
}
