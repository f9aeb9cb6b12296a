//! Study 3 — fast inference (VQ-Diffusion §4.3). On the embedded shape-world model (T = 100):
//! the full chain against, for S model calls, the exact Δ-step posterior (`strided`), the
//! original repository's `sample_fast` approximation (`fast-original`) and diffusers' "run only
//! the last S steps" (`diffusers`). Quality (oracle faithfulness, our FID) against wall time per
//! image; one figure per metric.
//!
//! `cargo run --release -p experiments --bin strided -- [--quick] [--model DIR] [--out DIR]`

use std::path::PathBuf;

use clap::Parser;
use experiments::sampler_study::{SamplerStudyArgs, VariantScore, score_table, score_variant};
use experiments::{LineChart, Series, record_settings};
use shape_world::FeatureNet;
use vq_pipeline::{GenerationOptions, LoadOptions, SamplerChoice, VqDiffusionPipeline};

#[derive(Parser)]
#[command(
    about = "Fast inference: full chain vs exact strided vs sample_fast vs diffusers' last-S steps"
)]
struct Args {
    #[command(flatten)]
    study: SamplerStudyArgs,
    /// Output folder.
    #[arg(long, default_value = "results/strided")]
    out: PathBuf,
    /// Guidance scale of every row (default: the model's recommended setting, its
    /// `generation_config.json`, else diffusers' 5).
    #[arg(long)]
    guidance_scale: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = args.study.model_dir()?;
    let pipeline = VqDiffusionPipeline::from_pretrained(&model, LoadOptions::default())?;
    let big_t = discrete_diffusion::Transition::num_timesteps(pipeline.chain());
    let steps: Vec<usize> = if args.study.quick {
        vec![10]
    } else {
        [100, 50, 25, 10, 5]
            .into_iter()
            .filter(|s| *s < big_t && big_t % s == 0)
            .collect()
    };
    let set = args.study.prompt_set();
    let mut base = pipeline.default_options(Vec::<String>::new());
    if let Some(scale) = args.guidance_scale {
        base = base.guidance_scale(scale);
    }
    record_settings(
        &args.out,
        "strided",
        &serde_json::json!({
            "model": model.display().to_string(), "T": big_t, "prompts (single, pair)": set.counts(),
            "steps": steps, "seed": args.study.seed, "guidance_scale": base.guidance_scale, "truncation": format!("{:?}", base.truncation),
        }),
    )?;
    let net = FeatureNet::shipped()?;
    let batch = 50;
    let mut scores: Vec<VariantScore> = Vec::new();
    let mut run = |label: String, options: GenerationOptions| -> anyhow::Result<VariantScore> {
        let (score, _) = score_variant(
            &label,
            &pipeline,
            &set,
            &options,
            &net,
            batch,
            args.study.seed,
        )?;
        eprint!("{}", score_table(std::slice::from_ref(&score)).text());
        scores.push(score.clone());
        Ok(score)
    };
    let full = run(
        format!("full T={big_t}"),
        base.clone().sampler(SamplerChoice::Full),
    )?;
    let samplers = [
        (SamplerChoice::Strided, "strided (exact)"),
        (SamplerChoice::FastOriginal, "sample_fast (original)"),
        (SamplerChoice::Diffusers, "diffusers last-S"),
    ];
    let mut curves: Vec<(String, Vec<VariantScore>)> = Vec::new();
    for (sampler, name) in samplers {
        let mut curve = vec![full.clone()];
        for &s in &steps {
            let options = base.clone().sampler(sampler).steps(s);
            curve.push(run(format!("{name} S={s}"), options)?);
        }
        curves.push((name.to_string(), curve));
    }
    let table = score_table(&scores);
    print!("{}", table.text());
    std::fs::write(args.out.join("strided.csv"), table.csv())?;
    for (stem, y_label, metric) in [
        (
            "strided_faithfulness",
            "all-correct rate (single + pair)",
            (|s: &VariantScore| 0.5 * (s.single_all_correct + s.pair_all_correct))
                as fn(&VariantScore) -> f64,
        ),
        (
            "strided_fid",
            "our FID (lower is better)",
            |s: &VariantScore| s.fid,
        ),
    ] {
        let chart = LineChart {
            title: format!("Fast inference on the shape-world model (T = {big_t})"),
            x_label: "wall time per image (ms, this machine)".into(),
            y_label: y_label.into(),
            series: curves
                .iter()
                .map(|(name, curve)| Series {
                    label: name.clone(),
                    points: curve
                        .iter()
                        .map(|s| (1000.0 * s.seconds_per_image, metric(s)))
                        .collect(),
                })
                .collect(),
            log_y: false,
        };
        println!("wrote {}", chart.save(&args.out, stem)?.display());
    }
    Ok(())
}
