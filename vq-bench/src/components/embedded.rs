//! End to end on the embedded shape-world model: prompts → images with the model's
//! recommended settings (the `vqd generate` defaults), 8 images per run; images per second.

use discrete_diffusion::SeededNoise;
use vq_pipeline::{LoadOptions, VqDiffusionPipeline, default_model_dir};

use crate::measure::{Measurement, time_reps};
use crate::{Options, measurement};

/// The prompts (one image each).
pub const PROMPTS: [&str; 8] = [
    "a red circle in the top left",
    "a large blue square",
    "a small yellow triangle above a red circle",
    "a green square in the bottom right",
    "a purple circle",
    "an orange triangle in the centre",
    "a small white square left of a blue circle",
    "a cyan circle in the top right",
];

/// Seconds per image of a batch of 8.
pub fn generate(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let root = default_model_dir()?;
    let pipeline = VqDiffusionPipeline::from_pretrained(
        &root,
        LoadOptions {
            device: o.device.clone(),
            ..LoadOptions::default()
        },
    )?;
    let options = pipeline.default_options(PROMPTS);
    let seconds = time_reps(1, o.reps, || {
        Ok(pipeline.generate(&options, &mut SeededNoise::new(0), |_| Ok(()))?)
    })?;
    let per_image: Vec<f64> = seconds.iter().map(|s| s / PROMPTS.len() as f64).collect();
    Ok(measurement(
        "embedded model, s per image",
        variant,
        per_image,
        None,
        format!(
            "batch of {}; guidance {}; {} model calls",
            PROMPTS.len(),
            options.guidance_scale,
            options.steps.unwrap_or(100)
        ),
    ))
}
