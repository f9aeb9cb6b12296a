//! Gumbel-max categorical sampling with an injectable noise source.
//!
//! `x = argmax_c (logits[c] + G[c])`, `G = -ln(-ln U)`, `U ~ U(0, 1)`, samples from
//! `softmax(logits)` (the reference's `log_sample_categorical` / scheduler `step`).
//!
//! * [`SeededNoise`] (the default) draws f64 uniforms from seeded ChaCha12 streams (the
//!   `rand_chacha` generator, a fixed, documented algorithm, so a seed means the same noise on
//!   every platform and every release of the project's dependencies) and forms the Gumbel noise
//!   in f64 before rounding to f32: f32 uniforms cap `G` at ≈16.6 and truncate the upper tail,
//!   which acts like a slightly lower sampling temperature.
//! * [`ReplayNoise`] replays a recorded stream of f32 uniforms and applies the reference's exact
//!   f32 formula `-ln(-ln(U + 1e-30) + 1e-30)`, consuming `numel` uniforms per call in C order,
//!   as diffusers' `gumbel_noised` does — so a run can be replayed against diffusers token for
//!   token.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::{Error, Result};

/// A source of randomness for the samplers.
pub trait NoiseSource {
    /// Gumbel(0, 1) noise of `shape`, f32, on `device`.
    fn gumbel(&mut self, shape: &[usize], device: &Device) -> Result<Tensor>;
    /// `n` uniforms in `(0, 1)` (for the random choices that are not Gumbel-max).
    fn uniform(&mut self, n: usize) -> Result<Vec<f64>>;
    /// The seed that determines this noise, when there is one (recorded with results).
    fn seed(&self) -> Option<u64> {
        None
    }
}

/// Seeded f64 noise: the same seed gives the same samples, bit for bit, on any machine and
/// thread count. Large Gumbel draws are generated in fixed-size chunks, each from its own stream
/// derived from `(seed, call, chunk)`, in parallel.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    seed: u64,
    calls: u64,
    rng: ChaCha12Rng,
}

/// Elements per independently seeded chunk of Gumbel noise.
const CHUNK: usize = 1 << 16;

fn open_uniform(rng: &mut ChaCha12Rng) -> f64 {
    loop {
        let u: f64 = rng.random();
        if u > 0.0 {
            return u;
        }
    }
}

fn gumbel_chunk(seed: u64, call: u64, chunk: usize, out: &mut [f32]) {
    let stream = seed
        ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut rng = ChaCha12Rng::seed_from_u64(stream);
    for g in out {
        *g = (-(-open_uniform(&mut rng).ln()).ln()) as f32;
    }
}

impl SeededNoise {
    /// A noise source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            calls: 0,
            rng: ChaCha12Rng::seed_from_u64(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn gumbel(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let mut g = vec![0f32; n];
        let (seed, call) = (self.seed, self.calls);
        self.calls += 1;
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
        if n <= CHUNK || threads == 1 {
            for (c, part) in g.chunks_mut(CHUNK).enumerate() {
                gumbel_chunk(seed, call, c, part);
            }
        } else {
            let chunks: Vec<(usize, &mut [f32])> = g.chunks_mut(CHUNK).enumerate().collect();
            let per_thread = chunks.len().div_ceil(threads);
            let mut groups: Vec<Vec<(usize, &mut [f32])>> = Vec::new();
            let mut iter = chunks.into_iter().peekable();
            while iter.peek().is_some() {
                groups.push(iter.by_ref().take(per_thread).collect());
            }
            std::thread::scope(|scope| {
                for group in groups {
                    scope.spawn(move || {
                        for (c, part) in group {
                            gumbel_chunk(seed, call, c, part);
                        }
                    });
                }
            });
        }
        Ok(Tensor::from_vec(g, shape, device)?)
    }

    fn uniform(&mut self, n: usize) -> Result<Vec<f64>> {
        Ok((0..n).map(|_| open_uniform(&mut self.rng)).collect())
    }

    fn seed(&self) -> Option<u64> {
        Some(self.seed)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The "same seed, same image" promise rests on a fixed generator: these numbers must never
    /// change (a change of the algorithm or of its seeding would show up here first).
    #[test]
    fn seeded_noise_is_pinned() {
        let mut noise = SeededNoise::new(42);
        let u = noise.uniform(3).unwrap();
        let g = noise
            .gumbel(&[4], &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let pinned_u = [PINNED_U[0], PINNED_U[1], PINNED_U[2]];
        assert_eq!(u, pinned_u, "uniforms {u:?}");
        assert_eq!(g, PINNED_G, "gumbel {g:?}");
        // ChaCha12 is what rand 0.9's StdRng uses, so the switch kept every earlier output.
        let mut std = <rand::rngs::StdRng as SeedableRng>::seed_from_u64(42);
        let v: f64 = std.random();
        assert_eq!(v, u[0]);
    }

    const PINNED_U: [f64; 3] = [0.5265574090027738, 0.5427252099031439, 0.6364650991438949];
    const PINNED_G: [f32; 4] = [0.44410992, 0.49240935, 0.7944588, 0.10353538];
}
