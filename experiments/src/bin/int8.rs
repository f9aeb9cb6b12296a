//! What 8-bit weights cost (issue 15, item 5): the embedded shape-world model sampled with its
//! transformer's attention and feed-forward projections in f32 and in 8 bits
//! (`LoadOptions::int8_transformer`: per-channel weights, per-token activations, integer
//! products), from the same prompts and the same noise. Reported per variant: the oracle's
//! all-correct rates and our FID against the real images (as every sampler study), and against
//! the f32 images of the same noise: our FID between the two sets, the share of images that are
//! pixel for pixel the f32 ones, and the share of equal pixels. An f32 run from other noise is the
//! yardstick: how far two f32 samplings of the same prompts already are from each other.
//!
//! `cargo run --release -p experiments --bin int8 -- [--quick] [--model DIR] [--out DIR]`

use std::path::PathBuf;

use clap::Parser;
use experiments::record_settings;
use experiments::sampler_study::{SamplerStudyArgs, score_table_with, score_variant};
use image::RgbImage;
use shape_world::FeatureNet;
use vq_pipeline::{LoadOptions, VqDiffusionPipeline};

#[derive(Parser)]
#[command(about = "8-bit transformer projections against f32 on the embedded model")]
struct Args {
    #[command(flatten)]
    study: SamplerStudyArgs,
    /// Output folder.
    #[arg(long, default_value = "results/int8")]
    out: PathBuf,
}

/// Share of `a`'s images equal to `b`'s, and share of equal pixels.
fn agreement(a: &[RgbImage], b: &[RgbImage]) -> (f64, f64) {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    let (mut equal, mut total) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        equal += x.pixels().zip(y.pixels()).filter(|(p, q)| p == q).count();
        total += x.pixels().len();
    }
    (
        same as f64 / a.len().max(1) as f64,
        equal as f64 / total.max(1) as f64,
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = args.study.model_dir()?;
    let load = |int8: bool| {
        VqDiffusionPipeline::from_pretrained(
            &model,
            LoadOptions {
                int8_transformer: int8,
                ..LoadOptions::default()
            },
        )
    };
    let (f32_pipeline, int8_pipeline) = (load(false)?, load(true)?);
    let set = args.study.prompt_set();
    let options = f32_pipeline.default_options(Vec::<String>::new());
    let seed = args.study.seed;
    let model_name = match &args.study.model {
        Some(m) => m.display().to_string(),
        None => "the embedded model (models/shape-world)".into(),
    };
    record_settings(
        &args.out,
        "int8",
        &serde_json::json!({
            "model": model_name, "prompts (single, pair)": set.counts(),
            "seed": seed, "yardstick seed": seed + 1_000_000, "guidance_scale": options.guidance_scale,
            "int8 products": if vq_nn::int8_native() { "integer (AVX-512-VNNI)" } else { "f32 (no VNNI on this CPU)" },
        }),
    )?;
    let net = FeatureNet::shipped()?;
    let batch = 50;
    let runs = [
        ("f32", &f32_pipeline, seed),
        ("int8", &int8_pipeline, seed),
        ("f32, other noise", &f32_pipeline, seed + 1_000_000),
    ];
    let mut scores = Vec::new();
    let mut images = Vec::new();
    for (label, pipeline, seed) in runs {
        let (score, generated) = score_variant(label, pipeline, &set, &options, &net, batch, seed)?;
        eprintln!(
            "{label}: all-correct {:.3} / {:.3}, FID {:.2}",
            score.single_all_correct, score.pair_all_correct, score.fid
        );
        scores.push(score);
        images.push(generated);
    }
    let reference = &images[0];
    let mut fid_to_f32 = Vec::new();
    let (mut same_images, mut same_pixels) = (Vec::new(), Vec::new());
    for generated in &images {
        fid_to_f32.push(net.frechet_distance(generated, reference)?);
        let (i, p) = agreement(generated, reference);
        same_images.push(i);
        same_pixels.push(p);
    }
    let table = score_table_with(
        &scores,
        &[
            ("fid_to_f32", fid_to_f32, 2),
            ("images_equal_to_f32", same_images, 3),
            ("pixels_equal_to_f32", same_pixels, 3),
        ],
    );
    print!("{}", table.text());
    std::fs::write(args.out.join("int8.csv"), table.csv())?;
    eprintln!("wrote {}/int8.csv", args.out.display());
    Ok(())
}
