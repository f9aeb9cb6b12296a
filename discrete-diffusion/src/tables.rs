//! diffusers-layout log tables (`log_at`, `log_bt`, `log_ct`, `log_cumprod_at`, `log_cumprod_bt`,
//! `log_cumprod_ct`, docs/reference-behaviour.md §2.1) for any transition: per-step logs of length `T`, cumulative
//! logs of length `T + 1` with the sentinel `(0, -inf, -inf)` at index `T` (the "identity" state
//! before the first step, reached by Python's index `-1`). Logs are taken in f64 and rounded to f32.

use crate::Transition;

/// The six log tables of diffusers' `VQDiffusionScheduler`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogTables {
    /// `ln α_t`, length T.
    pub log_at: Vec<f32>,
    /// `ln β_t`, length T.
    pub log_bt: Vec<f32>,
    /// `ln γ_t`, length T.
    pub log_ct: Vec<f32>,
    /// `ln ᾱ_t`, length T + 1.
    pub log_cumprod_at: Vec<f32>,
    /// `ln β̄_t`, length T + 1.
    pub log_cumprod_bt: Vec<f32>,
    /// `ln γ̄_t`, length T + 1.
    pub log_cumprod_ct: Vec<f32>,
}

impl LogTables {
    /// Tables of `transition`.
    pub fn new<T: Transition + ?Sized>(transition: &T) -> Self {
        let big_t = transition.num_timesteps();
        let steps: Vec<_> = (0..big_t).map(|t| transition.step(t).ln()).collect();
        let mut cumulative: Vec<_> = (0..big_t).map(|t| transition.cumulative(t).ln()).collect();
        cumulative.push(crate::Coefficients::IDENTITY.ln());
        Self {
            log_at: steps.iter().map(|c| c.stay).collect(),
            log_bt: steps.iter().map(|c| c.replace).collect(),
            log_ct: steps.iter().map(|c| c.mask).collect(),
            log_cumprod_at: cumulative.iter().map(|c| c.stay).collect(),
            log_cumprod_bt: cumulative.iter().map(|c| c.replace).collect(),
            log_cumprod_ct: cumulative.iter().map(|c| c.mask).collect(),
        }
    }
}
