//! Times `ClipTextModel::forward` on a batch of 2 prompts at the real ViT-B/32 text size
//! (12 layers, width 512, 8 heads, MLP 2048, vocab 49408) and, when given the folder written by
//! `benches/compare_transformers.py`, checks the hidden states against transformers.
//!
//! ```text
//! cargo run -p clip-text --example encode_bench                 # random weights, timing only
//! cargo run -p clip-text --example encode_bench -- /tmp/clip-b32 # + parity with transformers
//! ```

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clip_text::{ClipTextConfig, ClipTextModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let folder = std::env::args().nth(1).map(PathBuf::from);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let t0 = Instant::now();
    let (model, ids, reference) = match &folder {
        Some(dir) => {
            let model =
                ClipTextModel::from_pretrained(dir.join("text_encoder"), DType::F32, &device)?;
            let reference =
                candle_core::safetensors::load(dir.join("reference.safetensors"), &device)?;
            let ids = reference["input_ids"].clone();
            (model, ids, Some(reference["last_hidden_state"].clone()))
        }
        None => {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
            let model = ClipTextModel::new(vb, &ClipTextConfig::vit_base_patch32())?;
            // Detach from the VarMap so the frozen (fused) inference path runs.
            let frozen: std::collections::HashMap<String, Tensor> = varmap
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
                .collect();
            drop(model);
            let model = ClipTextModel::new(
                VarBuilder::from_tensors(frozen, DType::F32, &device),
                &ClipTextConfig::vit_base_patch32(),
            )?;
            let mut row: Vec<u32> = vec![49406, 320, 11798, 4298, 1629, 530, 518, 2831, 269, 49407];
            row.resize(77, 0);
            let mut second: Vec<u32> = (0..20).map(|i| 1000 + 37 * i).collect();
            second.insert(0, 49406);
            second.push(49407);
            second.resize(77, 0);
            let ids = Tensor::from_vec([row, second].concat(), (2, 77), &device)?;
            (model, ids, None)
        }
    };
    println!(
        "loaded in {:.2} s; threads {}; batch {:?}",
        t0.elapsed().as_secs_f64(),
        candle_core::utils::get_num_threads(),
        ids.dims()
    );
    for _ in 0..2 {
        model.forward(&ids)?;
    }
    let mut times = Vec::with_capacity(runs);
    let mut hidden = None;
    for _ in 0..runs {
        let start = Instant::now();
        hidden = Some(model.forward(&ids)?);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "candle clip-text: encode (2, 77) -> (2, 77, 512): median {:.1} ms, min {:.1} ms over {runs} runs",
        times[runs / 2],
        times[0]
    );
    if let (Some(hidden), Some(reference)) = (hidden, reference) {
        let diff = (hidden - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        println!("max |candle - transformers| over last_hidden_state: {diff:.3e}");
    }
    Ok(())
}
