//! `vqd generate --class 207 --model DIR`: class-conditional generation with a converted
//! original ImageNet model (`vq_pipeline::ClassConditionalPipeline`), with the same sampling
//! and output options as text-to-image.

use std::time::Instant;

use discrete_diffusion::{SeededNoise, StepEvent};
use indicatif::{ProgressBar, ProgressStyle};
use vq_pipeline::{
    ClassConditionalPipeline, GenerationOptions, LoadOptions, ModelRecord, OutputPlan, RunLog,
};

use crate::{GenerateArgs, dtype_of, locate};

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.prompts.is_empty(),
        "--class generates from class labels: give no prompts (got {:?})",
        args.prompts
    );
    let sampling = &args.sampling;
    let total = args.class.len() * sampling.num_images;
    let plan = OutputPlan::new(&args.output.out, total, args.output.contact_sheet)?;
    anyhow::ensure!(
        args.output.animate.is_none(),
        "--animate is not available for class-conditional models"
    );
    let start = Instant::now();
    let (root, name, variant, revision) = locate(&args.model)?;
    let dtype = dtype_of(args.model.dtype);
    let pipeline = ClassConditionalPipeline::from_pretrained(
        &root,
        LoadOptions {
            device: vq_nn::parse_device(&args.model.device)?,
            dtype,
            variant,
            int8_transformer: args.model.int8,
            ..LoadOptions::default()
        },
    )?;
    let load_time = start.elapsed();
    let labels = args
        .class
        .iter()
        .map(|c| pipeline.parse_class(c))
        .collect::<vq_pipeline::Result<Vec<_>>>()?;
    let names: Vec<String> = labels
        .iter()
        .map(|&l| match pipeline.class_names().get(l) {
            Some(n) => format!("class {l}: {n}"),
            None if l == pipeline.config().null_label() => "no class".into(),
            None => format!("class {l}"),
        })
        .collect();
    // The original's defaults for class models: no guidance unless asked.
    let options = sampling.apply(GenerationOptions::new(names).guidance_scale(1.0))?;
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template(
            "{spinner} denoising [{bar:30}] {pos}/{len} ({per_sec}) eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut noise = SeededNoise::new(sampling.seed);
    let generation = pipeline.generate(&labels, &options, &mut noise, |e: &StepEvent| {
        bar.set_length(e.planned_calls as u64);
        bar.set_position(e.call as u64 + 1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let mut log = RunLog::default();
    log.write_batch(&plan, 0, &generation)?;
    if let Some(path) = plan.write_contact_sheet(&generation.images, sampling.num_images.max(1))? {
        log.written.push(path);
    }
    let mut record = ModelRecord::named(name);
    record.revision = revision;
    record.dtype = format!("{dtype:?}");
    let mut sidecar = log.sidecar(&options, &record);
    sidecar["class_labels"] = serde_json::json!(labels);
    log.written.push(plan.write_sidecar(&sidecar)?);
    for path in &log.written {
        println!("wrote {}", path.display());
    }
    println!(
        "load {:.2} s | denoise {:.2} s ({} model calls) | decode {:.2} s",
        load_time.as_secs_f64(),
        generation.timings.denoise.as_secs_f64(),
        generation.model_calls,
        generation.timings.decode.as_secs_f64()
    );
    Ok(())
}
