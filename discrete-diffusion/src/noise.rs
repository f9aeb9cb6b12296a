//! Gumbel-max categorical sampling with an injectable noise source.
//!
//! `x = argmax_c (logits[c] + G[c])`, `G = -ln(-ln U)`, `U ~ U(0, 1)`, samples from
//! `softmax(logits)` (the reference's `log_sample_categorical` / scheduler `step`).
//!
//! * [`SeededNoise`] (the default) draws f64 uniforms from a seeded RNG and forms the Gumbel
//!   noise in f64 before rounding to f32: f32 uniforms cap `G` at ≈16.6 and truncate the upper
//!   tail, which acts like a slightly lower sampling temperature.
//! * [`ReplayNoise`] replays a recorded stream of f32 uniforms and applies the reference's exact
//!   f32 formula `-ln(-ln(U + 1e-30) + 1e-30)`, consuming `numel` uniforms per call in C order,
//!   as diffusers' `gumbel_noised` does — so a run can be replayed against diffusers token for
//!   token.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// A source of randomness for the samplers.
pub trait NoiseSource {
    /// Gumbel(0, 1) noise of `shape`, f32, on `device`.
    fn gumbel(&mut self, shape: &[usize], device: &Device) -> Result<Tensor>;
    /// `n` uniforms in `(0, 1)` (for the random choices that are not Gumbel-max).
    fn uniform(&mut self, n: usize) -> Result<Vec<f64>>;
}

/// Seeded f64 noise: the same seed gives the same samples, bit for bit, on the same machine.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: StdRng,
}

impl SeededNoise {
    /// A noise source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn open_uniform(&mut self) -> f64 {
        loop {
            let u: f64 = self.rng.random();
            if u > 0.0 {
                return u;
            }
        }
    }
}

impl NoiseSource for SeededNoise {
    fn gumbel(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let g: Vec<f32> = (0..n)
            .map(|_| (-(-self.open_uniform().ln()).ln()) as f32)
            .collect();
        Ok(Tensor::from_vec(g, shape, device)?)
    }

    fn uniform(&mut self, n: usize) -> Result<Vec<f64>> {
        Ok((0..n).map(|_| self.open_uniform()).collect())
    }
}

/// Replays recorded f32 uniforms with the reference's f32 Gumbel formula.
#[derive(Debug, Clone)]
pub struct ReplayNoise {
    uniforms: Vec<f32>,
    position: usize,
}

impl ReplayNoise {
    /// A stream of uniforms, consumed in order.
    pub fn new(uniforms: Vec<f32>) -> Self {
        Self {
            uniforms,
            position: 0,
        }
    }

    /// Appends more recorded uniforms (e.g. one tensor per recorded step).
    pub fn extend(&mut self, more: &[f32]) {
        self.uniforms.extend_from_slice(more);
    }

    /// Uniforms not consumed yet.
    pub fn remaining(&self) -> usize {
        self.uniforms.len() - self.position
    }

    fn take(&mut self, n: usize) -> Result<&[f32]> {
        if n > self.remaining() {
            return Err(Error::NoiseExhausted {
                requested: n,
                remaining: self.remaining(),
            });
        }
        let s = &self.uniforms[self.position..self.position + n];
        self.position += n;
        Ok(s)
    }
}

impl NoiseSource for ReplayNoise {
    fn gumbel(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let g: Vec<f32> = self
            .take(n)?
            .iter()
            .map(|&u| -(-(u + 1e-30f32).ln() + 1e-30f32).ln())
            .collect();
        Ok(Tensor::from_vec(g, shape, device)?)
    }

    fn uniform(&mut self, n: usize) -> Result<Vec<f64>> {
        Ok(self.take(n)?.iter().map(|&u| u as f64).collect())
    }
}

/// Samples one class per `(batch, position)` from log-probabilities (or unnormalised logits)
/// `(B, C, N)` by Gumbel-max over the class axis; returns `(B, N)` u32 ids. Ties go to the
/// lowest class index (as `torch.argmax`).
pub fn gumbel_argmax(logits: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let g = noise.gumbel(logits.dims(), logits.device())?;
    Ok((logits + g)?.argmax(1)?)
}
