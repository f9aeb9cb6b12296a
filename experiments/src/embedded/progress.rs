//! Progress bars and loss logs of the training run: an indicatif bar per stage (drawn only on a
//! terminal) and log lines that always reach stderr — through the bar when it is drawn, directly
//! when it is hidden (`nohup`, CI) — plus CSV loss logs appended in the run folder.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

/// A stage's progress bar starting at `position` of `len` steps.
pub fn stage_bar(name: &str, len: u64, position: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta} left) {msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(name.to_string());
    bar.set_position(position);
    bar
}

/// Prints a log line above the bar, or to stderr when the bar is not drawn.
pub fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// An append-only CSV file with a header written once.
pub struct CsvLog {
    path: PathBuf,
}

impl CsvLog {
    /// Opens (or creates, writing `header`) the log at `path`.
    pub fn open(path: &Path, header: &str) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !path.is_file() {
            std::fs::write(path, format!("{header}\n"))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Appends one row.
    pub fn row(&self, row: &str) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        writeln!(f, "{row}")?;
        Ok(())
    }

    /// `(first column, column)` of every row of the log at `path` whose two cells parse as
    /// finite numbers (the first column of every training log is the step).
    pub fn read_column(path: &Path, column: &str) -> anyhow::Result<Vec<(f64, f64)>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the training log {}", path.display()))?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let index = header
            .split(',')
            .position(|c| c == column)
            .with_context(|| format!("{}: no column `{column}` in `{header}`", path.display()))?;
        Ok(lines
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                Some((
                    cells.first()?.parse().ok()?,
                    cells.get(index)?.parse().ok()?,
                ))
            })
            .filter(|(_, v): &(f64, f64)| v.is_finite())
            .collect())
    }
}
