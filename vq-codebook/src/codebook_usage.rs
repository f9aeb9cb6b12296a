//! Codebook usage statistics: the perplexity `exp(−Σ p_k ln p_k)` of the code histogram (the
//! effective number of codes in use, `1 ≤ perplexity ≤ K`), the number of used codes, and
//! "dead" codes — codes no encoder output has picked for a given number of steps.

use serde::{Deserialize, Serialize};

/// Usage of a `K`-entry codebook over some set of token assignments.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CodebookUsage {
    /// `exp(entropy)` of the code histogram.
    pub perplexity: f64,
    /// Codes picked at least once.
    pub used_codes: usize,
    /// Codebook size.
    pub num_codes: usize,
}

impl CodebookUsage {
    /// Statistics of the ids in `indices` (each `< num_codes`).
    pub fn from_indices(indices: &[u32], num_codes: usize) -> Self {
        let mut counts = vec![0u64; num_codes];
        for &i in indices {
            counts[i as usize] += 1;
        }
        Self::from_counts(&counts)
    }

    /// Statistics of a histogram of code counts.
    pub fn from_counts(counts: &[u64]) -> Self {
        let total: u64 = counts.iter().sum();
        let mut entropy = 0.0;
        if total > 0 {
            for &n in counts.iter().filter(|&&n| n > 0) {
                let p = n as f64 / total as f64;
                entropy -= p * p.ln();
            }
        }
        Self {
            perplexity: entropy.exp(),
            used_codes: counts.iter().filter(|&&n| n > 0).count(),
            num_codes: counts.len(),
        }
    }
}

/// Remembers, for every code, the last training step at which it was picked.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageTracker {
    last_used: Vec<u64>,
}

impl UsageTracker {
    /// All codes count as used at `step`.
    pub fn new(num_codes: usize, step: u64) -> Self {
        Self {
            last_used: vec![step; num_codes],
        }
    }

    /// Restores a tracker from saved last-use steps.
    pub fn from_last_used(last_used: Vec<u64>) -> Self {
        Self { last_used }
    }

    /// Last-use step of every code.
    pub fn last_used(&self) -> &[u64] {
        &self.last_used
    }

    /// Records the codes picked at `step`.
    pub fn record(&mut self, indices: &[u32], step: u64) {
        for &i in indices {
            self.last_used[i as usize] = step;
        }
    }

    /// Marks `code` as used at `step` (after a restart).
    pub fn touch(&mut self, code: usize, step: u64) {
        self.last_used[code] = step;
    }

    /// Codes not picked during the last `window` steps, as of `step`.
    pub fn dead_codes(&self, step: u64, window: u64) -> Vec<usize> {
        self.last_used
            .iter()
            .enumerate()
            .filter(|(_, last)| step.saturating_sub(**last) >= window)
            .map(|(k, _)| k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_bounds() {
        let uniform = CodebookUsage::from_indices(&[0, 1, 2, 3], 8);
        assert!((uniform.perplexity - 4.0).abs() < 1e-12);
        assert_eq!(uniform.used_codes, 4);
        let single = CodebookUsage::from_indices(&[5, 5, 5], 8);
        assert!((single.perplexity - 1.0).abs() < 1e-12);
    }

    #[test]
    fn dead_codes_after_window() {
        let mut t = UsageTracker::new(4, 0);
        t.record(&[1, 2], 5);
        assert_eq!(t.dead_codes(5, 5), vec![0, 3]);
        assert_eq!(t.dead_codes(5, 6), Vec::<usize>::new());
    }
}
