//! Study 1 — schedules. Plots every transition family and schedule of `discrete-diffusion`
//! (cumulative ᾱ, γ̄, Kβ̄; unchanged / replaced / masked probabilities; mutual information) and
//! compares VQ-Diffusion's schedules with D3PM's linear, cosine and mutual-information ones.
//! With `--config scheduler_config.json` it plots a diffusers VQ-Diffusion scheduler config instead.
//!
//! `cargo run --release -p experiments --bin schedules -- [--quick] [--out DIR] [--config FILE]`

use std::path::PathBuf;

use clap::Parser;
use discrete_diffusion::{
    Absorbing, AnyTransition, BetaSchedule, MaskAndReplace, Transition, Uniform,
    VqDiffusionSchedule,
};
use experiments::{LineChart, Series, mutual_information_series, plot_schedule, record_settings};

#[derive(Parser)]
#[command(about = "Plot discrete-diffusion schedules (PNG + SVG + CSV) and compare them")]
struct Args {
    /// Small chains (T = 10) for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Output folder.
    #[arg(long, default_value = "results/schedules")]
    out: PathBuf,
    /// Plot this diffusers `scheduler_config.json` (VQDiffusionScheduler) instead of the study.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Number of real classes K for the study's chains.
    #[arg(long, default_value_t = 4096)]
    classes: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.config {
        let schedule = VqDiffusionSchedule::from_file(path)?;
        let chain = MaskAndReplace::from_scheduler_config(&schedule)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scheduler");
        for png in plot_schedule(&chain, &format!("{}", path.display()), &args.out, stem)? {
            println!("wrote {}", png.display());
        }
        return Ok(());
    }
    let t = if args.quick { 10 } else { 100 };
    let k = args.classes;
    let chains: Vec<(&str, &str, AnyTransition)> = vec![
        (
            "vq_released",
            "VQ-Diffusion released (mask-and-replace)",
            AnyTransition::MaskAndReplace(MaskAndReplace::released(k, t)?),
        ),
        (
            "vq_paper",
            "VQ-Diffusion paper (γ̄_T 0.9, Kβ̄_T 0.1)",
            AnyTransition::MaskAndReplace(MaskAndReplace::paper(k, t)?),
        ),
        (
            "absorbing_mi",
            "D3PM absorbing, mutual-information (1/(T-t+1))",
            AnyTransition::Absorbing(Absorbing::new(
                k,
                BetaSchedule::MutualInformation { num_timesteps: t },
            )?),
        ),
        (
            "absorbing_linear",
            "D3PM absorbing, linear β",
            AnyTransition::Absorbing(Absorbing::new(
                k,
                BetaSchedule::Linear {
                    num_timesteps: t,
                    start: 0.02,
                    end: 1.0,
                },
            )?),
        ),
        (
            "uniform_cosine",
            "D3PM uniform, cosine",
            AnyTransition::Uniform(Uniform::new(
                k,
                BetaSchedule::Cosine {
                    num_timesteps: t,
                    offset: 0.008,
                },
            )?),
        ),
        (
            "uniform_linear",
            "D3PM uniform, linear β",
            AnyTransition::Uniform(Uniform::new(
                k,
                BetaSchedule::Linear {
                    num_timesteps: t,
                    start: 0.02,
                    end: 1.0,
                },
            )?),
        ),
        (
            "uniform_mi",
            "D3PM uniform, mutual-information",
            AnyTransition::Uniform(Uniform::new(
                k,
                BetaSchedule::MutualInformation { num_timesteps: t },
            )?),
        ),
    ];
    record_settings(
        &args.out,
        "schedules",
        &serde_json::json!({ "T": t, "K": k, "quick": args.quick, "chains": chains.iter().map(|c| c.0).collect::<Vec<_>>() }),
    )?;
    println!(
        "{:<18} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "schedule", "ᾱ(T/2)", "γ̄(T)", "Kβ̄(T)", "I/lnK(T/2)", "I/lnK(T)"
    );
    for (stem, title, chain) in &chains {
        plot_schedule(chain, title, &args.out, stem)?;
        let half = chain.cumulative(t / 2 - 1);
        let end = chain.cumulative(t - 1);
        let h = (k as f64).ln();
        println!(
            "{stem:<18} {:>8.4} {:>8.4} {:>8.4} {:>10.4} {:>10.4}",
            half.stay,
            end.mask,
            k as f64 * end.replace,
            chain.mutual_information(t / 2 - 1) / h,
            chain.mutual_information(t - 1) / h
        );
    }
    let compare = |title: &str, y: &str, f: &dyn Fn(&AnyTransition) -> Series| LineChart {
        title: title.into(),
        x_label: "paper step t (1..T)".into(),
        y_label: y.into(),
        series: chains
            .iter()
            .map(|(_, _, c)| f(c))
            .zip(&chains)
            .map(|(mut s, (stem, _, _))| {
                s.label = stem.to_string();
                s
            })
            .collect(),
        log_y: false,
    };
    compare("Mutual information I(x_0; x_t) / ln K", "I / ln K", &|c| {
        mutual_information_series("", c)
    })
    .save(&args.out, "compare_mutual_information")?;
    compare(
        "Probability a token still shows its class",
        "P(x_t = x_0)",
        &|c| Series {
            label: String::new(),
            points: (0..c.num_timesteps())
                .map(|i| {
                    (
                        (i + 1) as f64,
                        c.cumulative(i).stay + c.cumulative(i).replace,
                    )
                })
                .collect(),
        },
    )
    .save(&args.out, "compare_unchanged")?;
    println!("figures, CSV and settings in {}", args.out.display());
    Ok(())
}
