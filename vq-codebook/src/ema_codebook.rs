//! Exponential-moving-average codebook updates (VQ-VAE paper appendix; taming's /
//! VQ-Diffusion's `EMAVectorQuantizer`) with Laplace smoothing, and dead-code restarts.
//!
//! Per step, with `n_k` the number of latents assigned to code `k` and `s_k` their sum:
//! `N_k ← γ N_k + (1−γ) n_k`, `S_k ← γ S_k + (1−γ) s_k`,
//! `Ñ_k = (N_k + ε) / (Σ N + K ε) · Σ N`, `e_k = S_k / Ñ_k`.
//! The state starts consistent (`N_k = 1`, `S_k = e_k`) so unused codes keep their vector instead
//! of being divided by ~ε as with zero-initialised counts.
//!
//! A restart replaces a code by a latent drawn from the current batch and resets its statistics
//! (`N_k = 1`, `S_k = z`).

/// The EMA statistics of a `K × D` codebook, kept on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct EmaCodebook {
    decay: f32,
    epsilon: f32,
    dim: usize,
    cluster_size: Vec<f32>,
    embedding_sum: Vec<f32>,
}

impl EmaCodebook {
    /// Fresh statistics for the codebook `embedding` (`K·D` values, row-major).
    pub fn new(embedding: &[f32], dim: usize, decay: f32, epsilon: f32) -> Self {
        Self {
            decay,
            epsilon,
            dim,
            cluster_size: vec![1.0; embedding.len() / dim],
            embedding_sum: embedding.to_vec(),
        }
    }

    /// Restores saved statistics.
    pub fn from_state(
        cluster_size: Vec<f32>,
        embedding_sum: Vec<f32>,
        dim: usize,
        decay: f32,
        epsilon: f32,
    ) -> Self {
        Self {
            decay,
            epsilon,
            dim,
            cluster_size,
            embedding_sum,
        }
    }

    /// EMA of code usage counts `N_k`.
    pub fn cluster_size(&self) -> &[f32] {
        &self.cluster_size
    }

    /// EMA of assigned-latent sums `S_k` (`K·D`).
    pub fn embedding_sum(&self) -> &[f32] {
        &self.embedding_sum
    }

    /// One EMA step from `latents` (`N·D`, row-major) assigned to `indices` (`N`); returns the new
    /// codebook (`K·D`).
    pub fn update(&mut self, latents: &[f32], indices: &[u32]) -> Vec<f32> {
        let (k, d) = (self.cluster_size.len(), self.dim);
        let mut counts = vec![0f32; k];
        let mut sums = vec![0f32; k * d];
        for (row, &code) in latents.chunks_exact(d).zip(indices) {
            let code = code as usize;
            counts[code] += 1.0;
            for (s, z) in sums[code * d..(code + 1) * d].iter_mut().zip(row) {
                *s += z;
            }
        }
        let (g, one_minus) = (self.decay, 1.0 - self.decay);
        for (n, c) in self.cluster_size.iter_mut().zip(&counts) {
            *n = g * *n + one_minus * c;
        }
        for (s, x) in self.embedding_sum.iter_mut().zip(&sums) {
            *s = g * *s + one_minus * x;
        }
        self.codebook()
    }

    /// The codebook implied by the statistics: `S_k / Ñ_k`.
    pub fn codebook(&self) -> Vec<f32> {
        let k = self.cluster_size.len();
        let total: f32 = self.cluster_size.iter().sum();
        let mut out = self.embedding_sum.clone();
        for (code, row) in out.chunks_exact_mut(self.dim).enumerate() {
            let smoothed = (self.cluster_size[code] + self.epsilon)
                / (total + k as f32 * self.epsilon)
                * total;
            for v in row {
                *v /= smoothed;
            }
        }
        out
    }

    /// Restarts `code` at `vector`.
    pub fn restart(&mut self, code: usize, vector: &[f32]) {
        self.cluster_size[code] = 1.0;
        self.embedding_sum[code * self.dim..(code + 1) * self.dim].copy_from_slice(vector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_move_towards_their_latents() {
        let mut ema = EmaCodebook::new(&[0.0, 0.0, 10.0, 10.0], 2, 0.5, 1e-5);
        // Initial state reproduces the codebook (up to smoothing).
        let start = ema.codebook();
        assert!(
            start
                .iter()
                .zip([0.0, 0.0, 10.0, 10.0])
                .all(|(a, b)| (a - b).abs() < 1e-3)
        );
        for _ in 0..30 {
            ema.update(&[1.0, 2.0, 1.0, 2.0], &[0, 0]);
        }
        let book = ema.codebook();
        assert!(
            (book[0] - 1.0).abs() < 1e-3 && (book[1] - 2.0).abs() < 1e-3,
            "{book:?}"
        );
        // The unused code keeps its direction; smoothing only rescales it slightly.
        assert!((book[2] - book[3]).abs() < 1e-4);
    }
}
