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

use candle_core::{DType, Device, Tensor};
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

    /// `argmax_c (logits[b, c, n] + G[b, c, n])` for row-major `(B, C, N)` logits on the host,
    /// with `G` exactly the noise `gumbel(&[B, C, N], ..)` would draw (same stream, same
    /// consumption); ties go to the lowest class. The default draws the noise tensor; sources
    /// that can evaluate it lazily override this to skip the logarithms of classes that cannot
    /// win (the result is identical).
    fn gumbel_argmax_host(
        &mut self,
        logits: &[f32],
        dims: (usize, usize, usize),
    ) -> Result<Vec<u32>> {
        let (b, c, n) = dims;
        let g = self
            .gumbel(&[b, c, n], &Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut best = vec![f32::NEG_INFINITY; b * n];
        let mut arg = vec![0u32; b * n];
        for (e, (&l, &g)) in logits.iter().zip(&g).enumerate() {
            let (bi, ci, ni) = (e / (c * n), (e / n) % c, e % n);
            let col = bi * n + ni;
            let score = l + g;
            if score > best[col] {
                best[col] = score;
                arg[col] = ci as u32;
            }
        }
        Ok(arg)
    }
}

/// Best score and class per column of a Gumbel-max, merged in class order.
struct ArgmaxState {
    best: Vec<f32>,
    arg: Vec<u32>,
}

impl ArgmaxState {
    fn new(columns: usize) -> Self {
        Self {
            best: vec![f32::NEG_INFINITY; columns],
            arg: vec![0; columns],
        }
    }

    /// Merges a state covering later classes (ties keep the earlier, lower class).
    fn merge(&mut self, later: &ArgmaxState) {
        for ((b, a), (&lb, &la)) in self
            .best
            .iter_mut()
            .zip(self.arg.iter_mut())
            .zip(later.best.iter().zip(&later.arg))
        {
            if lb > *b {
                *b = lb;
                *a = la;
            }
        }
    }
}

/// Runs the Gumbel-max over the flat elements `range`: `noise(gap)` is called once per element
/// in order (so a stream advances exactly as when every noise value is drawn) and returns the
/// element's noise `G`, or `None` when it can tell cheaply that `G ≤ gap` — that the element
/// cannot beat its column's best score, which lies `gap` above the element's logit.
fn argmax_range(
    logits: &[f32],
    dims: (usize, usize, usize),
    range: std::ops::Range<usize>,
    state: &mut ArgmaxState,
    mut noise: impl FnMut(f32) -> Option<f32>,
) {
    let (_, c, n) = dims;
    for e in range {
        let (bi, ci, ni) = (e / (c * n), (e / n) % c, e % n);
        let col = bi * n + ni;
        let l = logits[e];
        let best = state.best[col];
        if let Some(g) = noise(best - l) {
            let score = l + g;
            if score > best {
                state.best[col] = score;
                state.arg[col] = ci as u32;
            }
        }
    }
}

/// The Gumbel noise `−ln(−ln u)` of a seeded uniform `u`, or `None` when `−ln(−ln u) ≤ gap`
/// is certain: since `−ln u ≥ 1 − u`, `1 − u ≥ e^{−gap}·(1 + 10⁻⁴)` implies
/// `G ≤ gap − 10⁻⁴`, a margin wider than the f32 rounding of `logit + G` (so the skipped
/// element could not have won in f32 arithmetic either). Costs one f32 `exp` instead of two
/// f64 logarithms for nearly every element of a peaked posterior.
#[inline]
fn seeded_gumbel(u: f64, gap: f32) -> Option<f32> {
    if gap > 0.0 && gap.is_finite() {
        let bound = (-gap).exp() as f64 * (1.0 + 1e-4);
        if 1.0 - u >= bound {
            return None;
        }
    } else if gap == f32::INFINITY {
        return None;
    }
    Some((-(-u.ln()).ln()) as f32)
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

    fn gumbel_argmax_host(
        &mut self,
        logits: &[f32],
        dims: (usize, usize, usize),
    ) -> Result<Vec<u32>> {
        let (b, c, n) = dims;
        let total = b * c * n;
        let (seed, call) = (self.seed, self.calls);
        self.calls += 1;
        let chunks = total.div_ceil(CHUNK);
        let run = |range: std::ops::Range<usize>| -> ArgmaxState {
            let mut state = ArgmaxState::new(b * n);
            for chunk in range {
                let stream = seed
                    ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
                let mut rng = ChaCha12Rng::seed_from_u64(stream);
                let start = chunk * CHUNK;
                argmax_range(
                    logits,
                    dims,
                    start..(start + CHUNK).min(total),
                    &mut state,
                    |gap| seeded_gumbel(open_uniform(&mut rng), gap),
                );
            }
            state
        };
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
        let merged = if threads == 1 || chunks < 2 {
            run(0..chunks)
        } else {
            let per = chunks.div_ceil(threads);
            let states: Vec<ArgmaxState> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..chunks)
                    .step_by(per)
                    .map(|s| {
                        let run = &run;
                        scope.spawn(move || run(s..(s + per).min(chunks)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("noise worker panicked"))
                    .collect()
            });
            let mut it = states.into_iter();
            let mut first = it.next().expect("at least one part");
            for later in it {
                first.merge(&later);
            }
            first
        };
        Ok(merged.arg)
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

    fn gumbel_argmax_host(
        &mut self,
        logits: &[f32],
        dims: (usize, usize, usize),
    ) -> Result<Vec<u32>> {
        let (b, c, n) = dims;
        let uniforms = self.take(b * c * n)?;
        // -ln(-ln(U + 1e-30) + 1e-30) ≤ -ln(1e-30) ≈ 69.08 for any U ≥ 0 in f32.
        const BOUND: f32 = 69.1;
        let mut state = ArgmaxState::new(b * n);
        let mut it = uniforms.iter();
        argmax_range(logits, dims, 0..b * c * n, &mut state, |gap| {
            let u = *it.next().expect("one uniform per element");
            (gap < BOUND).then(|| -(-(u + 1e-30f32).ln() + 1e-30f32).ln())
        });
        Ok(state.arg)
    }
}

/// Samples one class per `(batch, position)` from log-probabilities (or unnormalised logits)
/// `(B, C, N)` by Gumbel-max over the class axis; returns `(B, N)` u32 ids. Ties go to the
/// lowest class index (as `torch.argmax`).
pub fn gumbel_argmax(logits: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    if logits.device().is_cpu() && logits.dtype() == DType::F32 && logits.rank() == 3 {
        let (b, c, n) = logits.dims3()?;
        let arg = crate::host::with_f32(logits, |data| noise.gumbel_argmax_host(data, (b, c, n)))??;
        return Ok(Tensor::from_vec(arg, (b, n), logits.device())?);
    }
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

    /// The default (materialising) Gumbel-max of a source, for comparison.
    struct Materialised<'a>(&'a mut dyn NoiseSource);

    impl NoiseSource for Materialised<'_> {
        fn gumbel(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
            self.0.gumbel(shape, device)
        }
        fn uniform(&mut self, n: usize) -> Result<Vec<f64>> {
            self.0.uniform(n)
        }
    }

    fn logits(b: usize, c: usize, n: usize, peaked: bool, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        (0..b * c * n)
            .map(|i| {
                let u: f32 = rng.random();
                match (peaked, i % 97) {
                    (_, 0) => f32::NEG_INFINITY,
                    (_, 1) => -70.0, // ties with the floor
                    (true, _) => -70.0 + 80.0 * u.powi(8),
                    (false, _) => u,
                }
            })
            .collect()
    }

    #[test]
    fn lazy_gumbel_argmax_equals_the_materialised_one() {
        // Several chunks (of 65536) and a partial last one.
        let dims = (2, 257, 300);
        for (peaked, seed) in [(true, 1), (false, 2)] {
            let l = logits(dims.0, dims.1, dims.2, peaked, seed);
            let mut a = SeededNoise::new(seed);
            let mut b = SeededNoise::new(seed);
            for _ in 0..2 {
                let lazy = a.gumbel_argmax_host(&l, dims).unwrap();
                let full = Materialised(&mut b).gumbel_argmax_host(&l, dims).unwrap();
                assert_eq!(lazy, full);
            }
            let uniforms: Vec<f32> = {
                let mut rng = ChaCha12Rng::seed_from_u64(seed + 10);
                (0..2 * dims.0 * dims.1 * dims.2)
                    .map(|_| rng.random())
                    .collect()
            };
            let mut a = ReplayNoise::new(uniforms.clone());
            let mut b = ReplayNoise::new(uniforms);
            for _ in 0..2 {
                let lazy = a.gumbel_argmax_host(&l, dims).unwrap();
                let full = Materialised(&mut b).gumbel_argmax_host(&l, dims).unwrap();
                assert_eq!(lazy, full);
            }
            assert_eq!(a.remaining(), 0);
        }
        // All -inf columns pick class 0, as torch.argmax does.
        let dead = vec![f32::NEG_INFINITY; 3 * 4];
        assert_eq!(
            SeededNoise::new(0)
                .gumbel_argmax_host(&dead, (1, 3, 4))
                .unwrap(),
            vec![0; 4]
        );
    }

    const PINNED_U: [f64; 3] = [0.5265574090027738, 0.5427252099031439, 0.6364650991438949];
    const PINNED_G: [f32; 4] = [0.44410992, 0.49240935, 0.7944588, 0.10353538];
}
