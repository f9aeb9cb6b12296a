//! D3PM noise schedules (Austin et al. 2021, §4 "noise schedules"; code `get_diffusion_betas`)
//! for the uniform and absorbing families: linear β, cosine ᾱ (β clipped at 0.999), the
//! mutual-information schedule (`I(x_0; x_t)` linear in t; for absorbing it is exactly
//! `β_t = 1/(T - t + 1)`, D3PM's "jsd"), and any user-given array.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A per-step corruption probability schedule `β_t`, `t ∈ 0..T` (0-based: code index t is
/// paper step t + 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `β` linear from `start` to `end` (numpy `linspace`).
    Linear {
        /// Number of steps `T`.
        num_timesteps: usize,
        /// `β` at the first step.
        start: f64,
        /// `β` at the last step.
        end: f64,
    },
    /// Cosine `ᾱ(t) = cos(((t/T) + s)/(1 + s) · π/2)`, `β_t = min(1 - ᾱ(t+1)/ᾱ(t), 0.999)`.
    Cosine {
        /// Number of steps `T`.
        num_timesteps: usize,
        /// The offset `s` (0.008 in D3PM and Nichol & Dhariwal).
        #[serde(default = "default_cosine_offset")]
        offset: f64,
    },
    /// `I(x_0; x_t) = (1 - (t+1)/T)·H(x_0)` for uniformly distributed `x_0`: closed form for
    /// absorbing (`β_t = 1/(T - t)`, 0-based), solved by bisection for uniform.
    MutualInformation {
        /// Number of steps `T`.
        num_timesteps: usize,
    },
    /// A user-given array of `β_t` (each in `[0, 1]`).
    Custom {
        /// The betas, one per step.
        betas: Vec<f64>,
    },
}

fn default_cosine_offset() -> f64 {
    0.008
}

/// Which family a mutual-information schedule is solved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BetaFamily {
    Uniform { num_classes: usize },
    Absorbing,
}

impl BetaSchedule {
    /// Number of steps `T`.
    pub fn num_timesteps(&self) -> usize {
        match self {
            BetaSchedule::Linear { num_timesteps, .. }
            | BetaSchedule::Cosine { num_timesteps, .. }
            | BetaSchedule::MutualInformation { num_timesteps } => *num_timesteps,
            BetaSchedule::Custom { betas } => betas.len(),
        }
    }

    pub(crate) fn betas(&self, family: BetaFamily) -> Result<Vec<f64>> {
        let steps = self.num_timesteps();
        if steps == 0 {
            return Err(Error::InvalidSchedule(
                "a schedule needs at least one step".into(),
            ));
        }
        let betas = match self {
            BetaSchedule::Linear { start, end, .. } => {
                let step = if steps > 1 {
                    (end - start) / (steps - 1) as f64
                } else {
                    0.0
                };
                (0..steps).map(|i| i as f64 * step + start).collect()
            }
            BetaSchedule::Cosine { offset, .. } => {
                let alpha_bar = |i: usize| {
                    ((i as f64 / steps as f64 + offset) / (1.0 + offset)
                        * std::f64::consts::FRAC_PI_2)
                        .cos()
                };
                (0..steps)
                    .map(|i| (1.0 - alpha_bar(i + 1) / alpha_bar(i)).min(0.999))
                    .collect()
            }
            BetaSchedule::MutualInformation { .. } => match family {
                BetaFamily::Absorbing => (0..steps).map(|i| 1.0 / (steps - i) as f64).collect(),
                BetaFamily::Uniform { num_classes } => {
                    mutual_information_uniform(steps, num_classes)
                }
            },
            BetaSchedule::Custom { betas } => betas.clone(),
        };
        if let Some((i, b)) = betas
            .iter()
            .enumerate()
            .find(|(_, b)| !(0.0..=1.0).contains(*b))
        {
            return Err(Error::InvalidSchedule(format!(
                "beta[{i}] = {b} is not a probability"
            )));
        }
        Ok(betas)
    }
}

/// Betas for the uniform family such that `I(x_0; x_t) / ln K = 1 - (t + 1)/T`.
fn mutual_information_uniform(steps: usize, num_classes: usize) -> Vec<f64> {
    let k = num_classes as f64;
    // Mutual information (as a fraction of ln K) when the cumulative stay probability is `a`.
    let fraction = |a: f64| {
        let diag = a + (1.0 - a) / k;
        let off = (1.0 - a) / k;
        let h = |p: f64| if p > 0.0 { -p * p.ln() } else { 0.0 };
        1.0 - (h(diag) + (k - 1.0) * h(off)) / k.ln()
    };
    let mut alpha_bars = Vec::with_capacity(steps);
    for i in 0..steps {
        let target = 1.0 - (i + 1) as f64 / steps as f64;
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        if target <= 0.0 {
            hi = 0.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if fraction(mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        alpha_bars.push(0.5 * (lo + hi));
    }
    let mut previous = 1.0;
    alpha_bars
        .into_iter()
        .map(|a| {
            let beta = if previous > 0.0 {
                (1.0 - a / previous).clamp(0.0, 1.0)
            } else {
                1.0
            };
            previous = a;
            beta
        })
        .collect()
}

/// `Π_{u = from+1 ..= to} (1 - β_u)` (from `x_0` when `from` is `None`): the probability of
/// keeping a class over a span of steps.
pub(crate) fn stay_product(betas: &[f64], from: Option<usize>, to: usize) -> f64 {
    let first = from.map_or(0, |s| s + 1);
    betas[first..=to].iter().fold(1.0, |acc, b| acc * (1.0 - b))
}

/// A β schedule resolved for one family: what [`crate::Uniform`] and [`crate::Absorbing`] share.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BetaChain {
    pub num_classes: usize,
    pub schedule: BetaSchedule,
    pub betas: Vec<f64>,
}

impl BetaChain {
    pub(crate) fn new(
        num_classes: usize,
        schedule: BetaSchedule,
        family: BetaFamily,
    ) -> Result<Self> {
        let betas = schedule.betas(family)?;
        Ok(Self {
            num_classes,
            schedule,
            betas,
        })
    }

    /// Probability of keeping a class from `from` (or `x_0`) to `to`.
    pub(crate) fn stay(&self, from: Option<usize>, to: usize) -> f64 {
        stay_product(&self.betas, from, to)
    }
}
