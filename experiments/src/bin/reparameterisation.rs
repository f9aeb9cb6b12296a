//! Study 6 — reparameterisation (VQ-Diffusion §3.3): the same denoiser trained with the same
//! budget to predict x₀ (the paper's choice; reverse step = Σ q(x_{t-1} | x_t, x₀) p̂(x₀ | x_t))
//! with and without the auxiliary x₀ loss, against predicting the reverse step
//! p_θ(x_{t-1} | x_t) directly (`discrete_diffusion::Parameterisation::Direct`, the original
//! repository's unused `'direct'` branch). Held-out ELBO, oracle faithfulness, our FID and time
//! per image (full chain; the direct model cannot take strided steps).
//!
//! `cargo run --release -p experiments --bin reparameterisation -- [--quick] [--run-dir DIR] [--out DIR] [--steps N]`

use std::path::PathBuf;

use clap::Parser;
use discrete_diffusion::Parameterisation;
use experiments::variant_study::{TrainStudyArgs, write_rows};
use experiments::{LineChart, Series, record_settings};

#[derive(Parser)]
#[command(
    about = "x0-parameterisation (with / without the auxiliary loss) vs direct posterior prediction"
)]
struct Args {
    #[command(flatten)]
    study: TrainStudyArgs,
    /// Output folder (tables and figures).
    #[arg(long, default_value = "results/reparameterisation")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scale = args.study.scale(&args.out);
    let base = scale.base.clone();
    let mut no_aux = base.clone();
    no_aux.denoiser.loss.aux_weight = 0.0;
    let mut direct = base.clone();
    direct.denoiser.loss.parameterisation = Parameterisation::Direct;
    let variants = [
        ("x0 + aux", 0.0, base.clone(), Parameterisation::X0),
        ("x0, no aux", 1.0, no_aux, Parameterisation::X0),
        ("direct", 2.0, direct, Parameterisation::Direct),
    ];
    record_settings(
        &args.out,
        "reparameterisation",
        &serde_json::json!({
            "base": base, "variants": variants.iter().map(|v| v.0).collect::<Vec<_>>(),
            "scale": scale,
        }),
    )?;
    let study = scale.prepare()?;
    let mut rows = Vec::new();
    for (name, x, config, parameterisation) in &variants {
        rows.push(study.run(name, *x, config, *parameterisation)?);
    }
    print!("{}", write_rows(&rows, &args.out, "reparameterisation")?);
    // The variational-bound term is the same quantity for every variant (the auxiliary loss is
    // not in it), so the curves compare how fast each parameterisation learns the likelihood.
    let mut series = Vec::new();
    for (name, _, config, _) in &variants {
        let points = study.learning_curve(config, "vlb_per_token", 10)?;
        if !points.is_empty() {
            series.push(Series {
                label: (*name).into(),
                points,
            });
        }
    }
    if series.is_empty() {
        println!("no logged training steps (runs shorter than the log interval): no curve figure");
        return Ok(());
    }
    let chart = LineChart {
        title: format!(
            "Reparameterisation: training L_vlb ({} steps x {} examples)",
            base.denoiser.steps, base.denoiser.batch_size
        ),
        x_label: "training step".into(),
        y_label: "L_vlb per token (nats, one random t per example)".into(),
        series,
        log_y: true,
    };
    println!(
        "wrote {}",
        chart.save(&args.out, "reparameterisation")?.display()
    );
    Ok(())
}
