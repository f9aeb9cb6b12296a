//! A synthetic token world with an exactly known distribution, for testing samplers and
//! measuring how far a trained denoiser is from the truth (docs/paper-results.md §4.3-E, the
//! "AA/BB" joint-distribution example of Improved VQ-Diffusion generalised).
//!
//! Sequences of length `L` over `K` classes are drawn from a uniform mixture of `M` fixed
//! templates; each position independently keeps its template class with probability `1 - ε`
//! and is otherwise resampled uniformly over the `K` classes:
//! `p(x) = (1/M) Σ_m Π_l [(1 - ε)·[x_l = T_{m,l}] + ε/K]`.
//!
//! Because `p` is known, so is the Bayes-optimal denoiser `p(x_0 | x_t)` for any transition
//! ([`TemplateWorld::bayes_log_p_x0`]): the posterior over templates given `x_t`, then per
//! position the posterior over classes. It is the best any network can do, which makes it a
//! reference point for ELBOs and a way to test samplers without training.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng as StdRng;

use crate::{Denoiser, Result, Transition};

/// A mixture of noisy templates.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateWorld {
    /// `K`.
    pub num_classes: usize,
    /// The `M` templates, each of length `L`.
    pub templates: Vec<Vec<u32>>,
    /// Per-position resampling probability `ε`.
    pub noise: f64,
}

impl TemplateWorld {
    /// `num_templates` random templates of length `length` over `num_classes` classes.
    pub fn new(
        num_classes: usize,
        length: usize,
        num_templates: usize,
        noise: f64,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let templates = (0..num_templates)
            .map(|_| {
                (0..length)
                    .map(|_| rng.random_range(0..num_classes as u32))
                    .collect()
            })
            .collect();
        Self {
            num_classes,
            templates,
            noise,
        }
    }

    /// Sequence length `L`.
    pub fn length(&self) -> usize {
        self.templates[0].len()
    }

    /// `p(x_l = c | template m)`.
    fn emission(&self, m: usize, l: usize, c: usize) -> f64 {
        let base = self.noise / self.num_classes as f64;
        base + if self.templates[m][l] as usize == c {
            1.0 - self.noise
        } else {
            0.0
        }
    }

    /// `n` samples as a `(n, L)` u32 tensor.
    pub fn sample(&self, n: usize, rng: &mut impl Rng, device: &Device) -> Result<Tensor> {
        let l = self.length();
        let mut out = Vec::with_capacity(n * l);
        for _ in 0..n {
            let m = rng.random_range(0..self.templates.len());
            for &t in &self.templates[m] {
                out.push(if rng.random::<f64>() < self.noise {
                    rng.random_range(0..self.num_classes as u32)
                } else {
                    t
                });
            }
        }
        Ok(Tensor::from_vec(out, (n, l), device)?)
    }

    /// `ln p(x)` of one sequence.
    pub fn log_prob(&self, x: &[u32]) -> f64 {
        let per_template: Vec<f64> = (0..self.templates.len())
            .map(|m| {
                x.iter()
                    .enumerate()
                    .map(|(l, &c)| self.emission(m, l, c as usize).ln())
                    .sum()
            })
            .collect();
        log_mean_exp(&per_template)
    }

    /// Monte-Carlo entropy of the world in bits per token (`n` samples).
    pub fn entropy_bits_per_token(&self, n: usize, seed: u64) -> Result<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = self.sample(n, &mut rng, &Device::Cpu)?.to_vec2::<u32>()?;
        let nats: f64 = x.iter().map(|s| -self.log_prob(s)).sum::<f64>() / n as f64;
        Ok(nats / self.length() as f64 / std::f64::consts::LN_2)
    }

    /// Index of the nearest template and the Hamming distance to it.
    pub fn nearest_template(&self, x: &[u32]) -> (usize, usize) {
        self.templates
            .iter()
            .enumerate()
            .map(|(m, t)| (m, t.iter().zip(x).filter(|(a, b)| a != b).count()))
            .min_by_key(|&(_, d)| d)
            .unwrap_or((0, x.len()))
    }

    /// The Bayes-optimal `log p(x_0 | x_t)` `(B, K, L)` under `transition` at timestep `t`.
    pub fn bayes_log_p_x0<T: Transition + ?Sized>(
        &self,
        transition: &T,
        x_t: &Tensor,
        t: usize,
    ) -> Result<Tensor> {
        let k = self.num_classes;
        let c = transition.cumulative(t);
        let likelihood = |obs: usize, x0: usize| -> f64 {
            if Some(obs) == transition.mask_index() {
                c.mask
            } else {
                c.replace + if obs == x0 { c.stay } else { 0.0 }
            }
        };
        let rows = x_t.to_vec2::<u32>()?;
        let (b, l) = (rows.len(), self.length());
        let mut out = vec![0f32; b * k * l];
        for (i, obs) in rows.iter().enumerate() {
            // Posterior over templates: p(m | x_t) ∝ Π_l Σ_c p(c | m) q(x_t,l | c).
            let log_w: Vec<f64> = (0..self.templates.len())
                .map(|m| {
                    (0..l)
                        .map(|pos| {
                            (0..k)
                                .map(|x0| {
                                    self.emission(m, pos, x0) * likelihood(obs[pos] as usize, x0)
                                })
                                .sum::<f64>()
                                .ln()
                        })
                        .sum()
                })
                .collect();
            let norm = log_mean_exp(&log_w);
            for pos in 0..l {
                let mut p = vec![0.0; k];
                for (m, lw) in log_w.iter().enumerate() {
                    let w = (lw - norm).exp() / self.templates.len() as f64;
                    let joint: Vec<f64> = (0..k)
                        .map(|x0| self.emission(m, pos, x0) * likelihood(obs[pos] as usize, x0))
                        .collect();
                    let z: f64 = joint.iter().sum();
                    for (pc, j) in p.iter_mut().zip(joint) {
                        *pc += w * j / z;
                    }
                }
                for (x0, pc) in p.iter().enumerate() {
                    out[i * k * l + x0 * l + pos] = pc.max(1e-30).ln() as f32;
                }
            }
        }
        Ok(Tensor::from_vec(out, (b, k, l), x_t.device())?)
    }

    /// The Bayes-optimal denoiser as a [`Denoiser`] (condition: `()`).
    pub fn bayes_denoiser<'a, T: Transition + ?Sized>(
        &'a self,
        transition: &'a T,
    ) -> BayesDenoiser<'a, T> {
        BayesDenoiser {
            world: self,
            transition,
        }
    }
}

/// [`TemplateWorld::bayes_log_p_x0`] as a [`Denoiser`].
pub struct BayesDenoiser<'a, T: ?Sized> {
    world: &'a TemplateWorld,
    transition: &'a T,
}

impl<T: Transition + ?Sized> Denoiser<()> for BayesDenoiser<'_, T> {
    fn log_p_x0(&self, x_t: &Tensor, t: usize, _: &()) -> Result<Tensor> {
        self.world.bayes_log_p_x0(self.transition, x_t, t)
    }
}

fn log_mean_exp(v: &[f64]) -> f64 {
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + (v.iter().map(|x| (x - max).exp()).sum::<f64>() / v.len() as f64).ln()
}
