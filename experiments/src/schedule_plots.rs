//! Figures of a transition's schedule — the user-facing "render any schedule" feature and the
//! `schedules` study: cumulative ᾱ_t, γ̄_t, Kβ̄_t; the probability that a token is unchanged
//! (`ᾱ + β̄`), replaced by another class (`(K − 1)·β̄`) or masked (`γ̄`) at step t; and the mutual
//! information `I(x_0; x_t)` (uniform `x_0`, as a fraction of `ln K`).

use std::path::{Path, PathBuf};

use discrete_diffusion::Transition;

use crate::{LineChart, Series};

/// `f(t)` against the paper step `t + 1`, for every step of the chain.
fn curve<T: Transition + ?Sized>(transition: &T, label: &str, f: &dyn Fn(usize) -> f64) -> Series {
    Series {
        label: label.to_string(),
        points: (0..transition.num_timesteps())
            .map(|t| ((t + 1) as f64, f(t)))
            .collect(),
    }
}

/// Curves of one transition: `(label, points)` for the cumulative coefficients.
pub fn coefficient_series<T: Transition + ?Sized>(transition: &T) -> Vec<Series> {
    let k = transition.num_classes() as f64;
    let curve = |label: &str, f: &dyn Fn(usize) -> f64| curve(transition, label, f);
    vec![
        curve("ᾱ_t (stay)", &|t| transition.cumulative(t).stay),
        curve("γ̄_t (mask)", &|t| transition.cumulative(t).mask),
        curve("Kβ̄_t (replace mass)", &|t| {
            k * transition.cumulative(t).replace
        }),
    ]
}

/// Unchanged / replaced / masked probabilities of a token at each step.
pub fn fate_series<T: Transition + ?Sized>(transition: &T) -> Vec<Series> {
    let k = transition.num_classes() as f64;
    let curve = |label: &str, f: &dyn Fn(usize) -> f64| curve(transition, label, f);
    vec![
        curve("unchanged", &|t| {
            let c = transition.cumulative(t);
            c.stay + c.replace
        }),
        curve("replaced", &|t| {
            (k - 1.0) * transition.cumulative(t).replace
        }),
        curve("masked", &|t| transition.cumulative(t).mask),
    ]
}

/// `I(x_0; x_t) / ln K` per step.
pub fn mutual_information_series<T: Transition + ?Sized>(label: &str, transition: &T) -> Series {
    let h = (transition.num_classes() as f64).ln();
    curve(transition, label, &|t| transition.mutual_information(t) / h)
}

/// Renders the three figures of one transition into `dir` (`<stem>_coefficients`, `<stem>_fate`,
/// `<stem>_mutual_information`, each PNG + SVG + CSV); returns the PNG paths.
pub fn plot_schedule<T: Transition + ?Sized>(
    transition: &T,
    title: &str,
    dir: &Path,
    stem: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let t_label = "paper step t (1..T)";
    let charts = [
        LineChart {
            title: format!("{title}: cumulative coefficients"),
            x_label: t_label.into(),
            y_label: "probability".into(),
            series: coefficient_series(transition),
            log_y: false,
        },
        LineChart {
            title: format!("{title}: what happened to a token by step t"),
            x_label: t_label.into(),
            y_label: "probability".into(),
            series: fate_series(transition),
            log_y: false,
        },
        LineChart {
            title: format!("{title}: mutual information"),
            x_label: t_label.into(),
            y_label: "I(x_0; x_t) / ln K".into(),
            series: vec![mutual_information_series("I / ln K", transition)],
            log_y: false,
        },
    ];
    let stems = ["coefficients", "fate", "mutual_information"];
    charts
        .iter()
        .zip(stems)
        .map(|(c, s)| Ok(c.save(dir, &format!("{stem}_{s}"))?))
        .collect()
}
