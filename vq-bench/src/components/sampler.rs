//! The sampler at the ITHQ shape without the network: `K = 4096` classes (+ mask), `N = 1024`
//! positions, `B = 2` images. The guided step starts from the network output of the guidance
//! batch `[uncond; cond]` (4 rows): guidance (scale 5) in log space with renormalisation,
//! top-r truncation (r = 0.86), the −70 floor, the one-step posterior at t = 50 and Gumbel-max
//! sampling — what one denoising step costs beyond the transformer. `sampler step` is the
//! posterior and Gumbel-max alone, `truncation` the top-r rule alone.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use discrete_diffusion::{
    LOG_PROB_FLOOR, MaskAndReplace, Prediction, SeededNoise, Truncation, reverse_step, truncate,
};

use crate::components::transformer::T;
use crate::measure::{Measurement, time_reps};
use crate::{Options, measurement};

/// Guidance scale and truncation rate of the sampler benchmarks.
pub const GUIDANCE: f64 = 5.0;
/// Top-r truncation rate.
pub const RATE: f32 = 0.86;

/// `sampler/inputs.safetensors`: `model_output` (4, 4096, 1024) log-softmax-normalised random
/// logits, `x_t` (2, 1024) with half the tokens masked.
pub fn prepare(work: &Path) -> anyhow::Result<PathBuf> {
    let dir = work.join("sampler");
    let path = dir.join("inputs.safetensors");
    if path.is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    let dev = Device::Cpu;
    // Peaked random logits (a few classes carry most mass, as a trained model's do).
    let logits = Tensor::from_vec(
        crate::random_weights::uniform(4 * 4096 * 1024, 0.0, 3.0, 5),
        (4, 4096, 1024),
        &dev,
    )?;
    let model_output = candle_nn::ops::log_softmax(&logits, 1)?;
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
    candle_core::safetensors::save(
        &[
            ("model_output".to_string(), model_output),
            ("x_t".to_string(), x_t),
        ]
        .into_iter()
        .collect(),
        &path,
    )?;
    Ok(dir)
}

fn inputs(o: &Options) -> anyhow::Result<(Tensor, Tensor)> {
    let dir = prepare(&o.work)?;
    let t = candle_core::safetensors::load(dir.join("inputs.safetensors"), &o.device)?;
    Ok((t["model_output"].clone(), t["x_t"].to_dtype(DType::U32)?))
}

/// Guidance + truncation + posterior + Gumbel-max.
pub fn guided_step(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let (out, x_t) = inputs(o)?;
    let chain = MaskAndReplace::released(4096, 100)?;
    let mut noise = SeededNoise::new(0);
    let uncond = out.narrow(0, 0, 2)?;
    let cond = out.narrow(0, 2, 2)?;
    let seconds = time_reps(1, o.reps, || {
        let prediction = Prediction::Guided {
            unconditional: uncond.clone(),
            conditional: cond.clone(),
            scale: GUIDANCE,
        };
        let x = reverse_step(
            &chain,
            prediction,
            &x_t,
            T,
            Truncation::TopR(RATE),
            &mut noise,
        )?;
        o.sync(&x)
    })?;
    Ok(measurement(
        "guided sampler step",
        variant,
        seconds,
        None,
        String::new(),
    ))
}

/// Posterior + Gumbel-max (diffusers' `scheduler.step`).
pub fn step(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let (out, x_t) = inputs(o)?;
    let chain = MaskAndReplace::released(4096, 100)?;
    let mut noise = SeededNoise::new(0);
    let log_p = out.narrow(0, 2, 2)?.maximum(LOG_PROB_FLOOR)?;
    let seconds = time_reps(1, o.reps, || {
        let x = reverse_step(
            &chain,
            Prediction::LogProbs(log_p.clone()),
            &x_t,
            T,
            Truncation::None,
            &mut noise,
        )?;
        o.sync(&x)
    })?;
    Ok(measurement(
        "sampler step",
        variant,
        seconds,
        None,
        String::new(),
    ))
}

/// Top-r truncation (diffusers' `VQDiffusionPipeline.truncate`).
pub fn truncation(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let (out, _) = inputs(o)?;
    let log_p = out.narrow(0, 2, 2)?;
    let seconds = time_reps(1, o.reps, || {
        o.sync(&truncate(&log_p, Truncation::TopR(RATE))?)
    })?;
    Ok(measurement(
        "truncation",
        variant,
        seconds,
        None,
        format!("r = {RATE}"),
    ))
}
