//! The CLIP ViT-B/32 text encoder (12 layers, width 512, 77 tokens), random weights, a batch of
//! two prompts — the pipeline's first stage (prompt and empty prompt under guidance).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use clip_text::{ClipTextConfig, ClipTextModel};

use crate::measure::{Measurement, time_reps};
use crate::random_weights::{specs_of, write_safetensors};
use crate::{Options, measurement};

/// `clip/{config.json, model.safetensors}` and `ids.safetensors`.
pub fn prepare(work: &Path) -> anyhow::Result<PathBuf> {
    let dir = work.join("clip");
    let weights = dir.join("model.safetensors");
    if weights.is_file() && dir.join("ids.safetensors").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    let cfg = ClipTextConfig::default();
    let mut json = serde_json::to_value(&cfg)?;
    json["architectures"] = serde_json::json!(["CLIPTextModel"]);
    json["model_type"] = "clip_text_model".into();
    json["bos_token_id"] = 49406.into();
    json["eos_token_id"] = 49407.into();
    json["pad_token_id"] = 1.into();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let specs = specs_of(
        |vb| Ok(ClipTextModel::new(vb, &cfg)?),
        |name, shape| {
            if name.contains("norm") && name.ends_with("weight") && shape.len() == 1 {
                (1.0, 0.02)
            } else {
                (0.0, 0.02)
            }
        },
    )?;
    write_safetensors(&weights, &specs, "F32", 19)?;
    let mut ids = vec![0i64; 2 * 77];
    for (b, row) in ids.chunks_mut(77).enumerate() {
        row[0] = 49406;
        for (i, id) in row.iter_mut().enumerate().skip(1).take(8 + 4 * b) {
            *id = (i * 733 % 49000) as i64;
        }
        row[9 + 4 * b] = 49407;
    }
    let ids = Tensor::from_vec(ids, (2, 77), &Device::Cpu)?;
    candle_core::safetensors::save(
        &[("ids".to_string(), ids)].into_iter().collect(),
        dir.join("ids.safetensors"),
    )?;
    Ok(dir)
}

/// FLOPs of one (2, 77) forward.
pub fn encode_flops(cfg: &ClipTextConfig, b: usize, l: usize) -> f64 {
    let (d, f, l, b) = (
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
        l as f64,
        b as f64,
    );
    let per_layer = 2.0 * b * l * (4.0 * d * d + 2.0 * d * f) + 2.0 * 2.0 * b * l * l * d;
    per_layer * cfg.num_hidden_layers as f64
}

/// Ids → `last_hidden_state`.
pub fn encode(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let dir = prepare(&o.work)?;
    let model = ClipTextModel::from_pretrained(&dir, DType::F32, &o.device)?;
    let ids =
        candle_core::safetensors::load(dir.join("ids.safetensors"), &o.device)?["ids"].clone();
    let seconds = time_reps(2, o.reps, || o.sync(&model.forward(&ids)?))?;
    Ok(measurement(
        "CLIP text encode 2x77",
        variant,
        seconds,
        Some(encode_flops(model.config(), 2, 77)),
        String::new(),
    ))
}
