//! Learning-rate schedules: linear warm-up, cosine decay to a floor, and an optional linear
//! re-warm-up after a resume (for optimisers that restart with fresh moments; with
//! [`crate::AdamW`'s saved moments a resume is exact and needs none).

use serde::{Deserialize, Serialize};

/// Warm-up + cosine schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak rate.
    pub peak: f64,
    /// Final rate as a fraction of the peak.
    pub final_fraction: f64,
    /// Warm-up steps from step 0.
    pub warmup: u64,
    /// Re-warm-up steps after a resume.
    pub resume_warmup: u64,
    /// Total steps.
    pub total: u64,
}

impl LrSchedule {
    /// The rate for (0-based) `step` of a session that started (or resumed) at `session_start`.
    pub fn rate(&self, step: u64, session_start: u64) -> f64 {
        let ramp = |done: u64, len: u64| {
            if len == 0 {
                1.0
            } else {
                ((done + 1) as f64 / len as f64).min(1.0)
            }
        };
        let warm = ramp(step, self.warmup);
        let rewarm = if session_start > 0 {
            ramp(step.saturating_sub(session_start), self.resume_warmup)
        } else {
            1.0
        };
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = (step.saturating_sub(self.warmup) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        let decay = self.final_fraction + (1.0 - self.final_fraction) * cosine;
        self.peak * warm * rewarm * decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_peaks_and_decays_to_the_floor() {
        let s = LrSchedule {
            peak: 1.0,
            final_fraction: 0.1,
            warmup: 10,
            resume_warmup: 5,
            total: 110,
        };
        assert!((s.rate(0, 0) - 0.1).abs() < 1e-12);
        assert!((s.rate(9, 0) - 1.0).abs() < 1e-12);
        assert!((s.rate(109, 0) - 0.1).abs() < 1e-3);
        assert!(s.rate(60, 0) < 1.0 && s.rate(60, 0) > 0.1);
        assert!((s.rate(60, 60) - s.rate(60, 0) / 5.0).abs() < 1e-12);
    }
}
