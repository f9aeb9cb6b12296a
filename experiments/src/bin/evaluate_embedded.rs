//! Evaluates an exported shape-world model through the real pipeline (default sampler and
//! guidance) with the oracle: faithfulness (single- and two-object test prompts, compositional
//! held-out split), diversity for "a circle", our FID of generations and of VQ-VAE
//! reconstructions. Prints a table, writes `eval.json` / `eval.csv` and contact sheets of
//! samples (`single.png`, `pair.png`, `held_out.png`, `a_circle.png` with their prompts), and (with `--run-dir`)
//! rewrites the model card with the table.
//!
//! ```text
//! cargo run --release -p experiments --bin evaluate_embedded -- --model models/shape-world --run-dir results/embedded-run
//! ```

use std::path::PathBuf;

use clap::Parser;
use experiments::embedded::TrainingReport;
use experiments::embedded::evaluation::{
    EvalSettings, evaluate_model, write_gallery, write_report,
};
use experiments::embedded::model_card::write_model_card;

#[derive(Parser, Debug)]
struct Args {
    /// The exported pipeline folder.
    #[arg(long, default_value = "models/shape-world")]
    model: PathBuf,
    /// Where to write eval.json / eval.csv (default: results/embedded-eval).
    #[arg(long, default_value = "results/embedded-eval")]
    out: PathBuf,
    /// The training run folder (its report.json is used to rewrite the model card).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    single: usize,
    #[arg(long, default_value_t = 200)]
    pair: usize,
    #[arg(long, default_value_t = 200)]
    held_out: usize,
    #[arg(long, default_value_t = 100)]
    diversity: usize,
    #[arg(long, default_value_t = 50)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Quantise the transformer's attention and feed-forward projections to 8 bits.
    #[arg(long)]
    int8: bool,
    /// Also write a labelled gallery (24 prompts: test, two-object, held-out, free phrasings).
    #[arg(long)]
    gallery: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = EvalSettings {
        single: args.single,
        pair: args.pair,
        held_out: args.held_out,
        diversity: args.diversity,
        batch: args.batch,
        seed: args.seed,
        int8: args.int8,
    };
    if let Some(path) = &args.gallery {
        write_gallery(&args.model, path, args.seed)?;
        eprintln!("wrote {}", path.display());
    }
    let report = evaluate_model(&args.model, &settings, Some(&args.out))?;
    let table = write_report(&report, &args.out)?;
    println!("{table}");
    if let Some(run_dir) = &args.run_dir {
        let training: TrainingReport =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json"))?)?;
        write_model_card(&args.model, &training, Some(&report))?;
        eprintln!(
            "model card updated: {}",
            args.model.join("README.md").display()
        );
    }
    eprintln!("wrote {}/eval.json and eval.csv", args.out.display());
    Ok(())
}
