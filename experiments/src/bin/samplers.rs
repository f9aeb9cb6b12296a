//! Study 10 — discrete-diffusion samplers at equal model-call budgets. On the embedded
//! shape-world model (T = 100, 8×8 tokens): the exact strided posterior (study 3's best) against
//! MaskGIT (confidence order), Halton-MaskGIT, random order, ReMDM remasking, the
//! forward-backward predictor-corrector, confidence-threshold commits, the entropy-bounded
//! sampler and the first-hitting sampler, with the full chain as the reference. Every variant:
//! one- and two-object all-correct rates (shape-world's oracle), our FID against the real images
//! of the same prompts, diversity on the under-specified prompt "a circle" (normalised entropy
//! of the colours and positions the oracle reads, and their total variation from the data's),
//! seconds per image and model calls per batch. Writes `samplers.csv` and `samplers_fid.png`.
//!
//! `cargo run --release -p experiments --bin samplers -- [--quick] [--single N --pair N] [--out DIR]`

use std::path::PathBuf;

use clap::Parser;
use discrete_diffusion::Transition;
use experiments::sampler_study::{
    SamplerStudyArgs, VariantScore, generate_set, score_table_with, score_variant,
};
use experiments::{LineChart, Series, record_settings};
use shape_world::{Attribute, FeatureNet, Histogram, Shape, Split, World, analyse};
use vq_pipeline::{
    GenerationOptions, LoadOptions, SamplerChoice, SamplerSettings, VqDiffusionPipeline,
};

#[derive(Parser)]
#[command(
    about = "Every sampler at several model-call budgets: faithfulness, FID, diversity, time"
)]
struct Args {
    #[command(flatten)]
    study: SamplerStudyArgs,
    /// Output folder.
    #[arg(long, default_value = "results/samplers")]
    out: PathBuf,
    /// Images of "a circle" per variant for the diversity columns.
    #[arg(long, default_value_t = 100)]
    diversity: usize,
}

/// One row: the scores, the diversity and which curve it belongs to.
struct Row {
    family: &'static str,
    score: VariantScore,
    entropy: f64,
    diversity_tv: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = args.study.model_dir()?;
    let pipeline = VqDiffusionPipeline::from_pretrained(&model, LoadOptions::default())?;
    let big_t = pipeline.chain().num_timesteps();
    let budgets: Vec<usize> = if args.study.quick {
        vec![5]
    } else {
        vec![5, 10, 25, 50]
    };
    let set = args.study.prompt_set();
    let diversity = if args.study.quick { 8 } else { args.diversity };
    let base = pipeline.default_options(Vec::<String>::new());
    let world = World::default();
    let real_circles: Vec<Vec<_>> = (0..)
        .map(|i| world.example(Split::Train, i))
        .filter(|e| e.scene.objects.len() == 1 && e.scene.objects[0].shape == Shape::Circle)
        .take(diversity.max(50))
        .map(|e| analyse(&e.image))
        .collect();
    let data_entropy = 0.5
        * (Histogram::of(Attribute::Colour, &real_circles).normalised_entropy(6)
            + Histogram::of(Attribute::Position, &real_circles).normalised_entropy(9));
    // Expected distinct mask-leaving times of one image: first-hitting's calls per image.
    let chain = pipeline.chain();
    let top = chain.cumulative(big_t - 1).mask;
    let n = pipeline.num_tokens() as f64;
    let first_hitting_calls: f64 = (0..big_t)
        .map(|t| {
            let below = if t == 0 {
                0.0
            } else {
                chain.cumulative(t - 1).mask
            };
            let p = (chain.cumulative(t).mask - below) / top;
            1.0 - (1.0 - p).powf(n)
        })
        .sum();
    record_settings(
        &args.out,
        "samplers",
        &serde_json::json!({
            "model": model.display().to_string(), "T": big_t, "prompts (single, pair)": set.counts(),
            "budgets": budgets, "seed": args.study.seed, "guidance_scale": base.guidance_scale,
            "truncation": format!("{:?}", base.truncation), "diversity images": diversity,
            "data diversity entropy": data_entropy,
            "first-hitting expected calls for one image": first_hitting_calls,
        }),
    )?;
    let net = FeatureNet::shipped()?;
    let batch = 50;
    let mut rows: Vec<Row> = Vec::new();
    let mut run = |family: &'static str,
                   label: String,
                   options: GenerationOptions|
     -> anyhow::Result<()> {
        let (score, _) = score_variant(
            &label,
            &pipeline,
            &set,
            &options,
            &net,
            batch,
            args.study.seed,
        )?;
        let circles = vec!["a circle".to_string(); diversity];
        let (images, _) =
            generate_set(&pipeline, &options, &circles, batch, args.study.seed + 3000)?;
        let read: Vec<Vec<_>> = images.iter().map(analyse).collect();
        let (mut entropy, mut tv) = (0.0, 0.0);
        for (attribute, values) in [(Attribute::Colour, 6), (Attribute::Position, 9)] {
            let g = Histogram::of(attribute, &read);
            entropy += 0.5 * g.normalised_entropy(values);
            tv += 0.5 * g.total_variation(&Histogram::of(attribute, &real_circles));
        }
        eprintln!(
            "{label:<36} single {:.3} pair {:.3} FID {:6.2} entropy {entropy:.3} tv {tv:.3} {:.4} s/img {} calls",
            score.single_all_correct,
            score.pair_all_correct,
            score.fid,
            score.seconds_per_image,
            score.model_calls
        );
        rows.push(Row {
            family,
            score,
            entropy,
            diversity_tv: tv,
        });
        Ok(())
    };
    let with = |sampler: SamplerChoice, steps: Option<usize>, settings: SamplerSettings| {
        let mut o = base.clone().sampler(sampler).sampler_settings(settings);
        o.steps = steps;
        o
    };
    let none = SamplerSettings::default;
    run(
        "full chain",
        format!("full chain T={big_t}"),
        with(SamplerChoice::Full, None, none()),
    )?;
    for &b in &budgets {
        run(
            "strided (exact)",
            format!("strided S={b}"),
            with(SamplerChoice::Strided, Some(b), none()),
        )?;
        for (family, sampler) in [
            ("maskgit", SamplerChoice::MaskGit),
            ("halton", SamplerChoice::Halton),
            ("random order", SamplerChoice::RandomOrder),
            ("remdm", SamplerChoice::Remdm),
        ] {
            run(
                family,
                format!("{} S={b}", sampler.name()),
                with(sampler, Some(b), none()),
            )?;
        }
        // About half the calls predict, the rest correct the last steps that land on noise
        // (every predictor step but the final one to the data), `b` calls in all.
        let predictor = (b + 2) / 2;
        let corrected = (b - predictor).max(1);
        run(
            "predictor-corrector",
            format!("predictor-corrector {predictor}+{corrected}"),
            with(
                SamplerChoice::PredictorCorrector,
                Some(predictor),
                SamplerSettings {
                    corrector_steps: Some(1),
                    corrected_steps: Some(corrected),
                    ..none()
                },
            ),
        )?;
    }
    run(
        "fast preset",
        "fast (preset)".into(),
        with(SamplerChoice::Fast, None, none()),
    )?;
    let thresholds: &[f64] = if args.study.quick {
        &[0.9]
    } else {
        &[0.5, 0.7, 0.9, 0.99]
    };
    for &threshold in thresholds {
        run(
            "threshold",
            format!("threshold {threshold}"),
            with(
                SamplerChoice::Threshold,
                None,
                SamplerSettings {
                    threshold: Some(threshold),
                    ..none()
                },
            ),
        )?;
    }
    if !args.study.quick {
        run(
            "threshold + editing",
            "threshold 0.9, edit 0.9".into(),
            with(
                SamplerChoice::Threshold,
                None,
                SamplerSettings {
                    threshold: Some(0.9),
                    edit_threshold: Some(0.9),
                    ..none()
                },
            ),
        )?;
    }
    let bounds: &[f64] = if args.study.quick {
        &[1.0]
    } else {
        &[8.0, 4.0, 1.0, 0.25]
    };
    for &bound in bounds {
        run(
            "entropy-bounded",
            format!("entropy-bounded γ={bound}"),
            with(
                SamplerChoice::EntropyBounded,
                None,
                SamplerSettings {
                    entropy_bound: Some(bound),
                    ..none()
                },
            ),
        )?;
    }
    run(
        "first-hitting",
        "first-hitting".into(),
        with(SamplerChoice::FirstHitting, None, none()),
    )?;

    let scores: Vec<VariantScore> = rows.iter().map(|r| r.score.clone()).collect();
    let table = score_table_with(
        &scores,
        &[
            (
                "diversity_entropy",
                rows.iter().map(|r| r.entropy).collect(),
                3,
            ),
            (
                "diversity_tv",
                rows.iter().map(|r| r.diversity_tv).collect(),
                3,
            ),
        ],
    );
    print!("{}", table.text());
    std::fs::write(args.out.join("samplers.csv"), table.csv())?;
    println!("data (real circles): diversity entropy {data_entropy:.3}");
    println!(
        "first-hitting: {first_hitting_calls:.1} expected model calls for one image at a time"
    );
    let mut families: Vec<&'static str> = Vec::new();
    for r in &rows {
        if !families.contains(&r.family) {
            families.push(r.family);
        }
    }
    let chart = LineChart {
        title: format!("Samplers on the shape-world model (T = {big_t}), FID against model calls"),
        x_label: "model calls per batch".into(),
        y_label: "our FID (lower is better)".into(),
        series: families
            .iter()
            .map(|f| {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.family == *f)
                    .map(|r| (r.score.model_calls as f64, r.score.fid))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series {
                    label: f.to_string(),
                    points,
                }
            })
            .collect(),
        log_y: false,
    };
    println!("wrote {}", chart.save(&args.out, "samplers_fid")?.display());
    Ok(())
}
