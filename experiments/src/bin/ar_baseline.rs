//! Study 5 — the paper's speed claim (VQ-Diffusion §4.3, Table 3): an autoregressive
//! transformer of the same size (heads, width, layers, jointly trained text encoder, learned
//! null for guidance) on the same VQ-VAE tokens with the same training budget, against the
//! VQ-Diffusion denoiser at several step counts (exact strided sampling). Held-out likelihood
//! (AR: exact NLL; diffusion: negative ELBO, an upper bound — both bits per token), oracle
//! faithfulness, our FID and wall time per image; one figure of quality against time.
//!
//! `cargo run --release -p experiments --bin ar_baseline -- [--quick] [--run-dir DIR] [--out DIR] [--steps N]`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use discrete_diffusion::SeededNoise;
use experiments::ar_baseline::sampling::{decode, sample_tokens};
use experiments::ar_baseline::trainer::ArTrainer;
use experiments::sampler_study::{VariantScore, score_images, score_table, score_variant};
use experiments::variant_study::TrainStudyArgs;
use experiments::{LineChart, Series, record_settings};
use vq_codebook::VqModel;
use vq_pipeline::{LoadOptions, SamplerChoice, VqDiffusionPipeline};

#[derive(Parser)]
#[command(about = "Autoregressive baseline vs VQ-Diffusion at several step counts")]
struct Args {
    #[command(flatten)]
    study: TrainStudyArgs,
    /// Output folder (tables and figures).
    #[arg(long, default_value = "results/ar-baseline")]
    out: PathBuf,
    /// Guidance scale of both models (default: the diffusion model's recommended setting, its
    /// `generation_config.json`).
    #[arg(long)]
    guidance_scale: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scale = args.study.scale(&args.out);
    let base = scale.base.clone();
    let big_t = base.chain.num_timesteps;
    let step_counts: Vec<usize> = [100, 50, 25, 10]
        .into_iter()
        .filter(|s| *s <= big_t && big_t % s == 0)
        .collect();
    let study = scale.prepare()?;

    // VQ-Diffusion at several step counts.
    let model_dir = study.train("VQ-Diffusion", &base)?;
    let pipeline = VqDiffusionPipeline::from_pretrained(&model_dir, LoadOptions::default())?;
    let guidance_scale = args.guidance_scale.unwrap_or(
        pipeline
            .default_options(Vec::<String>::new())
            .guidance_scale,
    );
    record_settings(
        &args.out,
        "ar_baseline",
        &serde_json::json!({
            "base": base, "step_counts": step_counts, "guidance_scale": guidance_scale,
            "scale": scale,
        }),
    )?;
    let elbo = pipeline.elbo(
        &study.elbo_prompts,
        &study.elbo_tokens,
        &mut SeededNoise::new(0),
    )?;
    let mut diffusion: Vec<VariantScore> = Vec::new();
    for &s in &step_counts {
        let options = pipeline
            .default_options(Vec::<String>::new())
            .guidance_scale(guidance_scale);
        let options = if s == big_t {
            options.sampler(SamplerChoice::Full)
        } else {
            options.sampler(SamplerChoice::Strided).steps(s)
        };
        let label = format!("VQ-Diffusion S={s}");
        let (score, _) = score_variant(&label, &pipeline, &study.set, &options, &study.net, 50, 0)?;
        eprintln!(
            "{label}: single {:.3} pair {:.3} FID {:.2} {:.4} s/image",
            score.single_all_correct, score.pair_all_correct, score.fid, score.seconds_per_image
        );
        diffusion.push(score);
    }

    // The autoregressive baseline.
    let ar_dir = study.variant_dir("ar", &base)?;
    let checkpoint = ar_dir.join("checkpoint.safetensors");
    let mut trainer = ArTrainer::resume_or_new(&base, &checkpoint)?;
    trainer.fit(&study.data, &checkpoint, &ar_dir.join("log.csv"))?;
    let ids = trainer.token_ids(&study.elbo_prompts)?;
    let keep = vec![true; study.elbo_prompts.len()];
    let states = trainer.model.condition(&ids, &keep)?;
    let n = study.elbo_tokens.dim(1)?;
    let ar_nll = trainer
        .model
        .ar
        .nll(&study.elbo_tokens, &states, false)?
        .mean_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        / n as f64
        / std::f64::consts::LN_2;
    let vq = VqModel::from_pretrained(
        experiments::embedded::vq_stage::vq_export_dir(&scale.run_dir),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let grid = base.transformer.grid();
    let start = Instant::now();
    let mut images = Vec::new();
    for (i, chunk) in study.set.prompts.chunks(50).enumerate() {
        let ids = trainer.token_ids(chunk)?;
        let tokens = sample_tokens(
            &trainer.model,
            &ids,
            guidance_scale,
            &mut SeededNoise::new(i as u64),
        )?;
        images.extend(decode(&vq, &tokens, grid)?);
    }
    let ar_seconds = start.elapsed().as_secs_f64() / images.len().max(1) as f64;
    let ar = score_images(
        format!("AR ({n} calls)"),
        &study.set,
        &images,
        &study.net,
        ar_seconds,
        n,
    )?;

    let mut table = score_table(&diffusion);
    let bits = |b: f64| (format!("{b:.4}"), b.to_string());
    table.append(&score_table(std::slice::from_ref(&ar)));
    table.add_column(
        "bits_per_token",
        diffusion
            .iter()
            .map(|_| bits(elbo.bits_per_token))
            .chain(std::iter::once(bits(ar_nll)))
            .collect(),
    );
    print!("{}", table.text());
    println!("(VQ-Diffusion bits/token: negative ELBO, an upper bound; AR: exact NLL)");
    std::fs::write(args.out.join("ar_baseline.csv"), table.csv())?;
    let faith = |s: &VariantScore| 0.5 * (s.single_all_correct + s.pair_all_correct);
    let point =
        |s: &VariantScore, f: &dyn Fn(&VariantScore) -> f64| (1000.0 * s.seconds_per_image, f(s));
    let chart = LineChart {
        title: "VQ-Diffusion (S steps) vs autoregressive, same size and budget".into(),
        x_label: "wall time per image (ms, this machine)".into(),
        y_label: "faithfulness (single + pair)/2 · FID/100".into(),
        series: vec![
            Series {
                label: "VQ-Diffusion: faithfulness".into(),
                points: diffusion.iter().map(|s| point(s, &faith)).collect(),
            },
            Series {
                label: "VQ-Diffusion: FID/100".into(),
                points: diffusion
                    .iter()
                    .map(|s| point(s, &|s| s.fid / 100.0))
                    .collect(),
            },
            Series {
                label: "AR: faithfulness".into(),
                points: vec![point(&ar, &faith)],
            },
            Series {
                label: "AR: FID/100".into(),
                points: vec![point(&ar, &|s| s.fid / 100.0)],
            },
        ],
        log_y: false,
    };
    println!("wrote {}", chart.save(&args.out, "ar_baseline")?.display());
    Ok(())
}
