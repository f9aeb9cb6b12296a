//! `vq-bench`: every component of VQ-Diffusion timed here and in the Python reference
//! (diffusers 0.42 / transformers 5.24 on torch), back to back in one run, in release builds,
//! each measurement in a fresh process (so peak memory is per component).
//!
//! ```text
//! cargo run --release -p vq-bench -- compare                      # ours and the reference ($REFERENCE_PYTHON)
//! cargo run --release -p vq-bench -- compare --no-reference       # ours alone
//! cargo run --release -p vq-bench --features mkl -- compare       # the MKL build (scripts/install-mkl.sh)
//! cargo run --release -p vq-bench -- compare --only transformer-layer,vq-decode --rounds 3
//! ```
//!
//! Prints one table (median and minimum per repetition, the ratio ours / reference of the
//! medians, effective GFLOP/s where a FLOP count applies, peak RSS) and writes it as
//! `report.csv` and `report.md` in `--out`, with the machine (CPU model, flags, cores), the
//! build and the command. Benchmarks never run in tests.

mod components;
mod machine;
mod measure;
mod random_weights;
mod report;

use std::path::PathBuf;
use std::process::Command;

use candle_core::{Device, Tensor};
use clap::{Parser, Subcommand};

use crate::components::{clip_encode, embedded, gemm, sampler, transformer, vq_decode};
use crate::measure::{Measurement, peak_rss_mib};

/// A component: its name on the command line, its variants, and our run.
struct ComponentDef {
    key: &'static str,
    variants: &'static [&'static str],
    heavy: bool,
    run: fn(&Options, &str) -> anyhow::Result<Measurement>,
}

const COMPONENTS: &[ComponentDef] = &[
    ComponentDef {
        key: "gemm",
        variants: &["f32", "bf16", "int8"],
        heavy: false,
        run: gemm::product,
    },
    ComponentDef {
        key: "transformer-layer",
        variants: &["f32", "bf16", "int8"],
        heavy: false,
        run: transformer::layer,
    },
    ComponentDef {
        key: "denoising-step",
        variants: &["f32", "bf16", "int8"],
        heavy: true,
        run: transformer::denoising_step,
    },
    ComponentDef {
        key: "guided-sampler-step",
        variants: &["f32"],
        heavy: false,
        run: sampler::guided_step,
    },
    ComponentDef {
        key: "sampler-step",
        variants: &["f32"],
        heavy: false,
        run: sampler::step,
    },
    ComponentDef {
        key: "truncation",
        variants: &["f32"],
        heavy: false,
        run: sampler::truncation,
    },
    ComponentDef {
        key: "vq-decode",
        variants: &["f32"],
        heavy: false,
        run: vq_decode::decode,
    },
    ComponentDef {
        key: "clip-encode",
        variants: &["f32"],
        heavy: false,
        run: clip_encode::encode,
    },
    ComponentDef {
        key: "embedded",
        variants: &["f32"],
        heavy: false,
        run: embedded::generate,
    },
    ComponentDef {
        key: "load",
        variants: &["f32", "int8"],
        heavy: true,
        run: transformer::load,
    },
];

/// Settings shared by the runs.
pub struct Options {
    /// Folder of the generated weights and inputs.
    pub work: PathBuf,
    /// Timed repetitions of the light components.
    pub reps: usize,
    /// Timed repetitions of the full denoising step.
    pub step_reps: usize,
    /// Layers of the per-layer benchmark.
    pub layers: usize,
    /// Layers of the full denoising step (ITHQ: 36).
    pub step_layers: usize,
    /// Device of our runs.
    pub device: Device,
}

impl Options {
    /// Waits for the device (a no-op on the CPU) so that timings are complete.
    pub fn sync(&self, t: &Tensor) -> anyhow::Result<()> {
        let _ = t;
        self.device.synchronize()?;
        Ok(())
    }
}

/// A measurement of ours.
pub fn measurement(
    component: &str,
    variant: &str,
    seconds: Vec<f64>,
    flops: Option<f64>,
    notes: String,
) -> Measurement {
    Measurement {
        implementation: "ours".into(),
        component: component.into(),
        variant: variant.into(),
        seconds,
        flops,
        peak_rss_mib: peak_rss_mib(),
        notes,
    }
}

#[derive(Parser)]
#[command(
    name = "vq-bench",
    about = "VQ-Diffusion components, ours and the Python reference, back to back"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Shared {
    /// Folder for the generated weights and inputs (several GB with the heavy components).
    #[arg(long, default_value = "target/vq-bench")]
    work: PathBuf,
    /// Timed repetitions per run of the light components.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Timed repetitions per run of the full 36-layer denoising step.
    #[arg(long, default_value_t = 1)]
    step_reps: usize,
    /// Layers of the per-layer transformer benchmark.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Layers of the full denoising step.
    #[arg(long, default_value_t = 36)]
    step_layers: usize,
    /// Device of our runs (cpu, cuda:N, metal).
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs every component, ours and the reference alternately, and reports.
    Compare {
        #[command(flatten)]
        shared: Shared,
        /// Ours only.
        #[arg(long)]
        no_reference: bool,
        /// The reference's Python (a venv with reference/requirements.txt); default
        /// $REFERENCE_PYTHON.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Only these components (comma-separated keys).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Skip the heavy components (full-size weights: the 36-layer step and loading).
        #[arg(long)]
        quick: bool,
        /// Rounds (each runs every component once per implementation).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Threads of the reference (torch.set_num_threads); ours use candle's default.
        #[arg(long)]
        threads: Option<usize>,
        /// Where report.csv and report.md are written.
        #[arg(long, default_value = "target/vq-bench/report")]
        out: PathBuf,
    },
    /// Runs one component of ours and prints its measurement (used by `compare`).
    Run {
        #[command(flatten)]
        shared: Shared,
        /// Component key.
        #[arg(long)]
        component: String,
        /// Variant.
        #[arg(long)]
        variant: String,
    },
}

fn options(s: &Shared) -> anyhow::Result<Options> {
    Ok(Options {
        work: s.work.clone(),
        reps: s.reps,
        step_reps: s.step_reps,
        layers: s.layers,
        step_layers: s.step_layers,
        device: vq_nn::parse_device(&s.device)?,
    })
}

fn shared_args(s: &Shared) -> Vec<String> {
    vec![
        "--work".into(),
        s.work.display().to_string(),
        "--reps".into(),
        s.reps.to_string(),
        "--step-reps".into(),
        s.step_reps.to_string(),
        "--layers".into(),
        s.layers.to_string(),
        "--step-layers".into(),
        s.step_layers.to_string(),
    ]
}

fn parse_result(stdout: &[u8]) -> Option<Measurement> {
    String::from_utf8_lossy(stdout).lines().rev().find_map(|l| {
        l.strip_prefix("RESULT ")
            .and_then(|j| serde_json::from_str(j).ok())
    })
}

fn run_child(mut cmd: Command, what: &str) -> Option<Measurement> {
    match cmd.output() {
        Ok(out) if out.status.success() => {
            let m = parse_result(&out.stdout);
            if m.is_none() {
                eprintln!(
                    "{what}: no RESULT line\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            m
        }
        Ok(out) => {
            eprintln!(
                "{what} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            None
        }
        Err(e) => {
            eprintln!("{what}: cannot start: {e}");
            None
        }
    }
}

fn prepare(key: &str, o: &Options) -> anyhow::Result<()> {
    match key {
        "transformer-layer" => drop(transformer::prepare(&o.work, o.layers)?),
        "denoising-step" | "load" => drop(transformer::prepare(&o.work, o.step_layers.max(36))?),
        "guided-sampler-step" | "sampler-step" | "truncation" => drop(sampler::prepare(&o.work)?),
        "vq-decode" => drop(vq_decode::prepare(&o.work)?),
        "clip-encode" => drop(clip_encode::prepare(&o.work)?),
        _ => {}
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn compare(
    shared: Shared,
    no_reference: bool,
    python: Option<PathBuf>,
    only: Vec<String>,
    quick: bool,
    rounds: usize,
    threads: Option<usize>,
    out: PathBuf,
) -> anyhow::Result<()> {
    let o = options(&shared)?;
    let selected: Vec<&ComponentDef> = COMPONENTS
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|k| k == c.key))
        .filter(|c| !(quick && c.heavy))
        .collect();
    if let Some(bad) = only
        .iter()
        .find(|k| !COMPONENTS.iter().any(|c| c.key == k.as_str()))
    {
        anyhow::bail!(
            "unknown component {bad:?}; known: {}",
            COMPONENTS
                .iter()
                .map(|c| c.key)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let python = if no_reference {
        None
    } else {
        python
            .or_else(|| std::env::var_os("REFERENCE_PYTHON").map(PathBuf::from))
            .filter(|p| {
                let ok = Command::new(p)
                    .arg("-c")
                    .arg("import torch, diffusers")
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !ok {
                    eprintln!(
                        "{}: no torch/diffusers there; running ours only",
                        p.display()
                    );
                }
                ok
            })
    };
    if python.is_none() && !no_reference {
        eprintln!("no reference Python (pass --python or set REFERENCE_PYTHON); running ours only");
    }
    let threads = threads.unwrap_or_else(candle_core::utils::get_num_threads);
    let exe = std::env::current_exe()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference.py");
    let mut results: Vec<Measurement> = Vec::new();
    for c in &selected {
        eprintln!("preparing {} ...", c.key);
        prepare(c.key, &o)?;
    }
    for round in 0..rounds {
        for c in &selected {
            for v in c.variants {
                eprintln!("round {} / {rounds}: {} {v}", round + 1, c.key);
                let mut ours = Command::new(&exe);
                ours.arg("run")
                    .args(shared_args(&shared))
                    .args([
                        "--device",
                        &shared.device,
                        "--component",
                        c.key,
                        "--variant",
                        v,
                    ])
                    .env("KMP_BLOCKTIME", "0");
                if let Some(m) = run_child(ours, &format!("ours {} {v}", c.key)) {
                    results.push(m);
                }
                if let Some(py) = &python {
                    let mut reference = Command::new(py);
                    reference
                        .arg(&script)
                        .args(shared_args(&shared))
                        .args(["--component", c.key, "--variant", v])
                        .args(["--threads", &threads.to_string()])
                        .args(["--root", env!("CARGO_MANIFEST_DIR")]);
                    if let Some(m) = run_child(reference, &format!("reference {} {v}", c.key)) {
                        results.push(m);
                    }
                }
            }
        }
    }
    let machine = machine::describe(threads);
    let command: Vec<String> = std::env::args().collect();
    let table = report::Table::build(
        &results,
        selected
            .iter()
            .flat_map(|c| c.variants.iter().map(move |v| (c.key, *v))),
    );
    println!("{}", machine.markdown());
    println!("{}", table.markdown());
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("report.csv"), table.csv())?;
    std::fs::write(
        out.join("report.md"),
        format!(
            "{}\nCommand: `{}`\n\n{}",
            machine.markdown(),
            command.join(" "),
            table.markdown()
        ),
    )?;
    std::fs::write(
        out.join("measurements.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    eprintln!("wrote {}/report.{{csv,md}}", out.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    vq_nn::tune_allocator();
    match Cli::parse().command {
        Cmd::Compare {
            shared,
            no_reference,
            python,
            only,
            quick,
            rounds,
            threads,
            out,
        } => compare(
            shared,
            no_reference,
            python,
            only,
            quick,
            rounds,
            threads,
            out,
        ),
        Cmd::Run {
            shared,
            component,
            variant,
        } => {
            let o = options(&shared)?;
            let c = COMPONENTS
                .iter()
                .find(|c| c.key == component)
                .ok_or_else(|| anyhow::anyhow!("unknown component {component}"))?;
            let mut m = (c.run)(&o, &variant)?;
            m.component = c.key.into();
            println!("RESULT {}", serde_json::to_string(&m)?);
            Ok(())
        }
    }
}
