//! Shared code of the study binaries in `src/bin/`: charts (PNG + SVG + CSV), schedule figures,
//! the embedded default model's training and evaluation ([`embedded`]),
//! and the results-folder conventions (every run records its settings next to its outputs).

pub mod ar_baseline;
pub mod embedded;
pub mod gallery;
pub mod result_table;
pub mod sampler_study;
mod schedule_plots;
pub mod variant_study;

pub use schedule_plots::{
    coefficient_series, fate_series, mutual_information_series, plot_schedule,
};
pub use vq_train::{LineChart, Series};

use std::path::Path;

/// Writes `settings.json` (the study's name, arguments and seed) into `dir`.
pub fn record_settings(
    dir: &Path,
    study: &str,
    settings: &serde_json::Value,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let record = serde_json::json!({
        "study": study,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "settings": settings,
        "crate_version": env!("CARGO_PKG_VERSION"),
    });
    std::fs::write(
        dir.join("settings.json"),
        serde_json::to_string_pretty(&record)? + "\n",
    )?;
    Ok(())
}
