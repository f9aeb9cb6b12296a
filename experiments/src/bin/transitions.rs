//! Study 2 — the mask-and-replace ablation (VQ-Diffusion §4.4, the final-mask-rate figure): sweep
//! M = γ̄_T with γ̄_T + Kβ̄_T = 1 from replace-only (M = 0, a uniform-noise chain) to mask-only
//! (M = 1, absorbing), plus the released constants (diffusers' defaults, γ̄_T = 0.99999),
//! training the same denoiser (architecture, data, steps, seed) for each on the embedded model's
//! VQ-VAE tokens; held-out ELBO (bits per token), oracle faithfulness and our FID vs M, in one
//! figure. Each variant trains and exports into its own resumable folder.
//!
//! `cargo run --release -p experiments --bin transitions -- [--quick] [--run-dir DIR] [--out DIR] [--steps N]`

use std::path::PathBuf;

use clap::Parser;
use discrete_diffusion::Parameterisation;
use experiments::embedded::config::ChainSettings;
use experiments::variant_study::{TrainStudyArgs, VariantRow, write_rows};
use experiments::{LineChart, Series, record_settings};

#[derive(Parser)]
#[command(about = "Mask-and-replace ablation: final mask rate M from replace-only to mask-only")]
struct Args {
    #[command(flatten)]
    study: TrainStudyArgs,
    /// Output folder (tables and figures).
    #[arg(long, default_value = "results/transitions")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scale = args.study.scale(&args.out);
    let base = scale.base.clone();
    let steps = base.denoiser.steps;
    let t = base.chain.num_timesteps;
    let chain = |m: f64, k_beta: f64| ChainSettings {
        num_timesteps: t,
        gamma_bar_final: m,
        k_beta_bar_final: k_beta,
    };
    let mut variants: Vec<(String, f64, ChainSettings)> = [0.0, 0.5, 0.8, 0.9, 1.0]
        .into_iter()
        .map(|m: f64| {
            // The base recipe's own chain for its M, so the study shares that variant with the
            // other studies (same configuration, same folder).
            let settings = if m == base.chain.gamma_bar_final {
                base.chain.clone()
            } else {
                chain(m, 1.0 - m)
            };
            (format!("M={m}"), m, settings)
        })
        .collect();
    variants.push(("released".into(), 0.99999, chain(0.99999, 0.000001)));
    record_settings(
        &args.out,
        "transitions",
        &serde_json::json!({
            "base": base, "variants": variants.iter().map(|v| (&v.0, &v.2)).collect::<Vec<_>>(),
            "scale": scale,
        }),
    )?;
    let study = scale.prepare()?;
    let mut rows = Vec::new();
    for (name, m, chain) in &variants {
        let mut config = base.clone();
        config.chain = chain.clone();
        rows.push(study.run(name, *m, &config, Parameterisation::X0)?);
    }
    print!("{}", write_rows(&rows, &args.out, "transitions")?);
    let sweep: Vec<&VariantRow> = rows
        .iter()
        .filter(|r| r.variant.starts_with("M="))
        .collect();
    let series = |label: &str, f: fn(&VariantRow) -> f64| Series {
        label: label.into(),
        points: sweep.iter().map(|r| (r.x, f(r))).collect(),
    };
    let chart = LineChart {
        title: format!("Mask-and-replace ablation ({steps} steps per variant)"),
        x_label: "final mask rate M = γ̄_T (Kβ̄_T = 1 − M)".into(),
        y_label: "value".into(),
        series: vec![
            series("held-out ELBO (bits/token)", |r| r.elbo_bits_per_token),
            series("faithfulness (single + pair)/2", |r| {
                0.5 * (r.single_all_correct + r.pair_all_correct)
            }),
            series("our FID / 100", |r| r.fid / 100.0),
        ],
        log_y: false,
    };
    println!("wrote {}", chart.save(&args.out, "transitions")?.display());
    Ok(())
}
