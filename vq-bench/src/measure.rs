//! Timing and memory of one measurement: warm-up runs, then timed repetitions (medians and
//! minima are taken by the report), and the process's peak resident set size.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What one component run reports (ours or the reference), as one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// `"ours"` or `"reference"`.
    pub implementation: String,
    /// Component name.
    pub component: String,
    /// Variant (dtype, build).
    pub variant: String,
    /// Seconds per repetition.
    pub seconds: Vec<f64>,
    /// Floating-point operations per repetition, when meaningful.
    pub flops: Option<f64>,
    /// Peak resident set size of the process, MiB.
    pub peak_rss_mib: f64,
    /// Free-form details (compute dtype, library versions, deviations).
    #[serde(default)]
    pub notes: String,
}

/// Runs `f` `warmup` times, then `reps` timed times.
pub fn time_reps<T>(
    warmup: usize,
    reps: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut out = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        let r = f()?;
        out.push(start.elapsed().as_secs_f64());
        drop(r);
    }
    Ok(out)
}

/// Peak resident set size of this process so far (Linux `VmHWM`), MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM")
}

/// Resident memory now, MiB (Linux; NaN elsewhere).
pub fn rss_mib() -> f64 {
    status_mib("VmRSS")
}

/// A memory line of `/proc/self/status`, MiB.
fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Median of `v` (mean of the two middle values for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Minimum of `v`.
pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}
