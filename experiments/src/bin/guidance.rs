//! Study 4 — Improved VQ-Diffusion's guidance and samplers, on the embedded shape-world model:
//! (a) classifier-free guidance scale with the learned null embedding against the empty-prompt
//! embedding, (b) truncation rate (top-r; top-k in the table), (c) VQ-Diffusion v1 sampling (full chain) against the
//! high-quality sampler (prior rule 1) and the purity prior (rule 2) at several prior weights.
//! Scored by oracle faithfulness, our FID and wall time per image; figures per sweep.
//!
//! The shipped model was trained with a learned null (10 % caption dropout); its empty-prompt
//! rows use the text encoder's embedding of "" with that same model, not a model trained with
//! empty-caption dropout.
//!
//! `cargo run --release -p experiments --bin guidance -- [--quick] [--model DIR] [--out DIR]`

use std::path::PathBuf;

use clap::Parser;
use discrete_diffusion::Truncation;
use experiments::sampler_study::{SamplerStudyArgs, VariantScore, score_table, score_variant};
use experiments::{LineChart, Series, record_settings};
use shape_world::FeatureNet;
use vq_pipeline::{
    GenerationOptions, LoadOptions, NullCondition, SamplerChoice, VqDiffusionPipeline,
};

#[derive(Parser)]
#[command(about = "Guidance scale, null embedding, truncation and purity-prior sweeps")]
struct Args {
    #[command(flatten)]
    study: SamplerStudyArgs,
    /// Output folder.
    #[arg(long, default_value = "results/guidance")]
    out: PathBuf,
    /// Guidance scales to sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,1.5,2,3,5,8,12")]
    scales: Vec<f64>,
    /// Truncation rates (top-r) to sweep at scale 5.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,0.95,0.9,0.86,0.8,0.7,0.5"
    )]
    rates: Vec<f32>,
    /// Top-k values (table only).
    #[arg(long, value_delimiter = ',', default_value = "64,16,4")]
    top_k: Vec<usize>,
    /// Purity prior weights r.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,4")]
    prior_weights: Vec<f64>,
}

fn chart(title: &str, x_label: &str, series: Vec<Series>) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "all-correct rate (single + pair) / our FID ÷ 100".into(),
        series,
        log_y: false,
    }
}

fn faithfulness(s: &VariantScore) -> f64 {
    0.5 * (s.single_all_correct + s.pair_all_correct)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = args.study.model_dir()?;
    let pipeline = VqDiffusionPipeline::from_pretrained(&model, LoadOptions::default())?;
    let (scales, rates, ks, weights) = if args.study.quick {
        (vec![1.0, 5.0], vec![0.86], vec![8], vec![1.0])
    } else {
        (
            args.scales.clone(),
            args.rates.clone(),
            args.top_k.clone(),
            args.prior_weights.clone(),
        )
    };
    let set = args.study.prompt_set();
    record_settings(
        &args.out,
        "guidance",
        &serde_json::json!({
            "model": model.display().to_string(), "prompts (single, pair)": set.counts(),
            "scales": scales, "truncation_rates": rates, "prior_weights": weights,
            "seed": args.study.seed, "default_scale": 5.0,
        }),
    )?;
    let net = FeatureNet::shipped()?;
    let mut scores: Vec<VariantScore> = Vec::new();
    let mut run = |label: String, options: GenerationOptions| -> anyhow::Result<VariantScore> {
        let (score, _) =
            score_variant(&label, &pipeline, &set, &options, &net, 50, args.study.seed)?;
        eprint!("{}", score_table(std::slice::from_ref(&score)).text());
        scores.push(score.clone());
        Ok(score)
    };
    let base = GenerationOptions::new(Vec::<String>::new()).sampler(SamplerChoice::Full);

    // (a) guidance scale × null condition.
    let mut scale_series = Vec::new();
    let mut v1 = None;
    for (null, name) in [
        (NullCondition::Learned, "learned null"),
        (NullCondition::EmptyPrompt, "empty prompt"),
    ] {
        let mut faith = Vec::new();
        let mut fid = Vec::new();
        for &s in &scales {
            // At scale 1 there is no guidance, so no null condition to choose.
            let options = base.clone().guidance_scale(s);
            let options = if s > 1.0 {
                options.null_condition(null)
            } else {
                options
            };
            let score = run(format!("{name} scale={s}"), options)?;
            if null == NullCondition::Learned && s == 5.0 {
                v1 = Some(score.clone());
            }
            faith.push((s, faithfulness(&score)));
            fid.push((s, score.fid / 100.0));
        }
        scale_series.push(Series {
            label: format!("{name}: faithfulness"),
            points: faith,
        });
        scale_series.push(Series {
            label: format!("{name}: FID/100"),
            points: fid,
        });
    }
    let c = chart(
        "Guidance scale (full chain)",
        "guidance scale",
        scale_series,
    );
    println!("wrote {}", c.save(&args.out, "guidance_scale")?.display());

    // (b) truncation rate at the default scale.
    let mut faith = Vec::new();
    let mut fid = Vec::new();
    for &r in &rates {
        let options = base.clone().truncation(Truncation::TopR(r));
        let score = run(format!("truncation r={r}"), options)?;
        faith.push((f64::from(r), faithfulness(&score)));
        fid.push((f64::from(r), score.fid / 100.0));
    }
    // Top-k truncation (table only).
    for &k in &ks {
        run(
            format!("top-k k={k}"),
            base.clone().truncation(Truncation::TopK(k)),
        )?;
    }
    let c = chart(
        "Truncation (top-r, scale 5, learned null)",
        "truncation rate r",
        vec![
            Series {
                label: "faithfulness".into(),
                points: faith,
            },
            Series {
                label: "FID/100".into(),
                points: fid,
            },
        ],
    );
    println!("wrote {}", c.save(&args.out, "truncation")?.display());

    // (c) v1 sampling vs the high-quality sampler vs the purity prior.
    let hq = run(
        "high-quality (rule 1)".into(),
        base.clone().sampler(SamplerChoice::HighQuality),
    )?;
    let mut faith = Vec::new();
    let mut fid = Vec::new();
    for &w in &weights {
        let options = base.clone().sampler(SamplerChoice::Purity).prior_weight(w);
        let score = run(format!("purity (rule 2) r={w}"), options)?;
        faith.push((w, faithfulness(&score)));
        fid.push((w, score.fid / 100.0));
    }
    let mut series = vec![
        Series {
            label: "purity: faithfulness".into(),
            points: faith,
        },
        Series {
            label: "purity: FID/100".into(),
            points: fid,
        },
    ];
    let span = (weights[0], weights[weights.len() - 1]);
    for (name, s) in [("v1", v1), ("high-quality", Some(hq))] {
        if let Some(s) = s {
            series.push(Series {
                label: format!("{name}: faithfulness"),
                points: vec![(span.0, faithfulness(&s)), (span.1, faithfulness(&s))],
            });
        }
    }
    let c = chart(
        "Samplers: v1, high-quality (rule 1), purity (rule 2)",
        "purity prior weight r",
        series,
    );
    println!("wrote {}", c.save(&args.out, "samplers")?.display());

    let table = score_table(&scores);
    print!("{}", table.text());
    std::fs::write(args.out.join("guidance.csv"), table.csv())?;
    Ok(())
}
