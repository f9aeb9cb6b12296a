//! Shared by the sampler tests: the tiny template world they sample and the total-variation
//! distance of samples from its exact distribution, and a sampling run with its exact
//! denoiser that counts the model calls.

use std::cell::Cell;

use candle_core::{Device, Tensor};
use discrete_diffusion::{
    AnyTransition, Denoiser, FnDenoiser, SamplerConfig, SeededNoise, TemplateWorld, initial_state,
    sample,
};

/// Four classes, three tokens, three templates, noise 0.1.
pub fn world() -> TemplateWorld {
    TemplateWorld::new(4, 3, 3, 0.1, 7)
}

/// Total-variation distance between the empirical distribution of `samples` (sequences of
/// three tokens) and the world's.
pub fn tv_to_truth(world: &TemplateWorld, samples: &[Vec<u32>]) -> f64 {
    let k = world.num_classes as u32;
    let mut counts = std::collections::HashMap::new();
    for s in samples {
        *counts.entry(s.clone()).or_insert(0usize) += 1;
    }
    let mut tv = 0.0;
    for a in 0..k {
        for b in 0..k {
            for c in 0..k {
                let x = vec![a, b, c];
                let p = world.log_prob(&x).exp();
                let q = *counts.get(&x).unwrap_or(&0) as f64 / samples.len() as f64;
                tv += (p - q).abs();
            }
        }
    }
    tv / 2.0
}

/// Samples `batch` sequences with the exact denoiser; returns them, the model calls made and
/// the calls the sampler announced.
pub fn run(
    transition: &AnyTransition,
    config: &SamplerConfig,
    batch: usize,
    seed: u64,
) -> (Vec<Vec<u32>>, usize, usize) {
    let w = world();
    let bayes = w.bayes_denoiser(transition);
    let calls = Cell::new(0);
    let counting = FnDenoiser(|x: &Tensor, t: usize, c: &()| {
        calls.set(calls.get() + 1);
        bayes.log_p_x0(x, t, c)
    });
    let mut noise = SeededNoise::new(seed);
    let init = initial_state(transition, batch, 3, &mut noise, &Device::Cpu).unwrap();
    let mut planned = 0;
    let x = sample(transition, &counting, &(), &init, config, &mut noise, |e| {
        planned = e.planned_calls;
        Ok(())
    })
    .unwrap();
    (x.to_vec2::<u32>().unwrap(), calls.get(), planned)
}
