//! The comparison table: per component and variant, the median and minimum seconds of ours and
//! of the reference over every repetition of every round, their ratio (ours / reference, of
//! the medians: below 1 means we are faster), effective GFLOP/s and the peak RSS.

use crate::measure::{Measurement, median, min};

struct Side {
    median: f64,
    min: f64,
    gflops: Option<f64>,
    rss: f64,
    notes: String,
}

struct Row {
    component: String,
    variant: String,
    ours: Option<Side>,
    reference: Option<Side>,
}

/// The report.
pub struct Table {
    rows: Vec<Row>,
}

fn side(
    results: &[Measurement],
    component: &str,
    variant: &str,
    implementation: &str,
) -> Option<Side> {
    let sel: Vec<&Measurement> = results
        .iter()
        .filter(|m| {
            m.component == component && m.variant == variant && m.implementation == implementation
        })
        .collect();
    if sel.is_empty() {
        return None;
    }
    let seconds: Vec<f64> = sel.iter().flat_map(|m| m.seconds.iter().copied()).collect();
    let med = median(&seconds);
    Some(Side {
        median: med,
        min: min(&seconds),
        gflops: sel[0].flops.map(|f| f / med / 1e9),
        rss: sel.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max),
        notes: sel[0].notes.clone(),
    })
}

fn seconds(s: f64) -> String {
    if s < 1e-2 {
        format!("{:.2} ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

impl Table {
    /// The rows of `results`, in the order of `keys` (component, variant).
    pub fn build<'a>(
        results: &[Measurement],
        keys: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let rows = keys
            .map(|(c, v)| {
                let ours = side(results, c, v, "ours");
                let mut reference = side(results, c, v, "reference");
                // The same work: the reference's FLOP rate from our count when it has none.
                if let (Some(o), Some(r)) = (&ours, &mut reference)
                    && r.gflops.is_none()
                {
                    r.gflops = o.gflops.map(|g| g * o.median / r.median);
                }
                Row {
                    component: c.to_string(),
                    variant: v.to_string(),
                    ours,
                    reference,
                }
            })
            .filter(|r| r.ours.is_some() || r.reference.is_some())
            .collect();
        Self { rows }
    }

    /// Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| component | variant | ours median (min) | reference median (min) | ours / reference | ours GFLOP/s | reference GFLOP/s | ours peak RSS | reference peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        let mut notes = Vec::new();
        for r in &self.rows {
            let cell = |x: &Option<Side>| {
                x.as_ref().map_or("—".to_string(), |x| {
                    format!("{} ({})", seconds(x.median), seconds(x.min))
                })
            };
            let gf = |x: &Option<Side>| {
                x.as_ref()
                    .and_then(|x| x.gflops)
                    .map_or("—".to_string(), |g| format!("{g:.0}"))
            };
            let rss = |x: &Option<Side>| {
                x.as_ref()
                    .map_or("—".to_string(), |x| format!("{:.0} MiB", x.rss))
            };
            let ratio = match (&r.ours, &r.reference) {
                (Some(a), Some(b)) => format!("{:.2}x", a.median / b.median),
                _ => "—".into(),
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.component,
                r.variant,
                cell(&r.ours),
                cell(&r.reference),
                ratio,
                gf(&r.ours),
                gf(&r.reference),
                rss(&r.ours),
                rss(&r.reference)
            ));
            for (who, x) in [("ours", &r.ours), ("reference", &r.reference)] {
                if let Some(x) = x
                    && !x.notes.is_empty()
                {
                    notes.push(format!(
                        "* {} {} ({who}): {}",
                        r.component, r.variant, x.notes
                    ));
                }
            }
        }
        if !notes.is_empty() {
            s.push('\n');
            s.push_str(&notes.join("\n"));
            s.push('\n');
        }
        s
    }

    /// CSV (seconds, GFLOP/s, MiB).
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "component,variant,ours_median_s,ours_min_s,reference_median_s,reference_min_s,ratio,ours_gflops,reference_gflops,ours_peak_rss_mib,reference_peak_rss_mib\n",
        );
        let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.6}"));
        for r in &self.rows {
            let (o, re) = (&r.ours, &r.reference);
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                r.component,
                r.variant,
                f(o.as_ref().map(|x| x.median)),
                f(o.as_ref().map(|x| x.min)),
                f(re.as_ref().map(|x| x.median)),
                f(re.as_ref().map(|x| x.min)),
                f(o.as_ref()
                    .zip(re.as_ref())
                    .map(|(a, b)| a.median / b.median)),
                f(o.as_ref().and_then(|x| x.gflops)),
                f(re.as_ref().and_then(|x| x.gflops)),
                f(o.as_ref().map(|x| x.rss)),
                f(re.as_ref().map(|x| x.rss)),
            ));
        }
        s
    }
}
