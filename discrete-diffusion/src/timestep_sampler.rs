//! Drawing training timesteps: uniform, or the original VQ-Diffusion importance sampling
//! (`DiffusionTransformer.sample_time(..., 'importance')`, docs/reference-behaviour.md §6.2; Nichol & Dhariwal's
//! `L_t`-history sampler): uniform until every `t` has been seen more than 10 times, then
//! `p(t) ∝ sqrt(E[L_t²]) + 1e-4` (with `p(0) := p(1)`), where `E[L_t²]` is an exponential moving
//! average (`0.9·old + 0.1·L_t²`). The state serializes, so training can resume.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How training timesteps are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSampling {
    /// `t ~ U{0..T-1}`.
    Uniform,
    /// The loss-history importance sampler.
    Importance,
}

/// A timestep sampler with its loss history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimestepSampler {
    /// The rule.
    pub kind: TimestepSampling,
    /// EMA of `L_t²` per timestep.
    pub history: Vec<f64>,
    /// Visits per timestep.
    pub count: Vec<u64>,
}

/// Visits every timestep needs before importance sampling starts.
pub const IMPORTANCE_WARMUP: u64 = 10;

impl TimestepSampler {
    /// A fresh sampler for `num_timesteps` steps.
    pub fn new(kind: TimestepSampling, num_timesteps: usize) -> Self {
        Self {
            kind,
            history: vec![0.0; num_timesteps],
            count: vec![0; num_timesteps],
        }
    }

    /// Current sampling probabilities over `t`.
    pub fn probabilities(&self) -> Vec<f64> {
        let big_t = self.history.len();
        let warm = self.count.iter().all(|&c| c > IMPORTANCE_WARMUP);
        if self.kind == TimestepSampling::Uniform || !warm {
            return vec![1.0 / big_t as f64; big_t];
        }
        let mut w: Vec<f64> = self
            .history
            .iter()
            .map(|h| (h + 1e-10).sqrt() + 1e-4)
            .collect();
        if big_t > 1 {
            w[0] = w[1];
        }
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }

    /// Draws `batch` timesteps (with replacement) and their probabilities.
    pub fn sample<R: Rng + ?Sized>(&self, batch: usize, rng: &mut R) -> (Vec<usize>, Vec<f64>) {
        let p = self.probabilities();
        let mut ts = Vec::with_capacity(batch);
        let mut ps = Vec::with_capacity(batch);
        for _ in 0..batch {
            let mut u: f64 = rng.random();
            let mut chosen = p.len() - 1;
            for (t, &pt) in p.iter().enumerate() {
                if u < pt {
                    chosen = t;
                    break;
                }
                u -= pt;
            }
            ts.push(chosen);
            ps.push(p[chosen]);
        }
        (ts, ps)
    }

    /// Records the per-sample losses `L_t` of a batch.
    pub fn update(&mut self, ts: &[usize], losses: &[f64]) -> Result<()> {
        if ts.len() != losses.len() {
            return Err(Error::InvalidSetting(format!(
                "{} timesteps but {} losses",
                ts.len(),
                losses.len()
            )));
        }
        for (&t, &l) in ts.iter().zip(losses) {
            if t >= self.history.len() {
                return Err(Error::TimestepOutOfRange {
                    t,
                    num_timesteps: self.history.len(),
                });
            }
            self.history[t] = 0.9 * self.history[t] + 0.1 * l * l;
            self.count[t] += 1;
        }
        Ok(())
    }
}
