//! The reverse-step math at VQ-Diffusion scale (ITHQ: K = 4096 classes + mask, N = 1024 tokens,
//! batch 2, T = 100): the posterior `q_posterior`, a full sampler step (posterior + Gumbel-max),
//! and top-r truncation. `benches/compare_posterior.sh` runs this next to diffusers' scheduler.

use candle_core::{Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use discrete_diffusion::{
    MaskAndReplace, NoiseSource, SeededNoise, Transition, Truncation, gumbel_argmax, log_normalise,
    truncate,
};

fn inputs() -> (MaskAndReplace, Tensor, Tensor) {
    let chain = MaskAndReplace::released(4096, 100).unwrap();
    let mut noise = SeededNoise::new(0);
    let logits = (noise.gumbel(&[2, 4096, 1024], &Device::Cpu).unwrap() * 3.0).unwrap();
    let log_p = log_normalise(&logits).unwrap();
    // Half the positions masked, the rest holding real codes.
    let x_t: Vec<u32> = (0..2 * 1024)
        .map(|i| {
            if i % 2 == 0 {
                4096
            } else {
                (i * 37 % 4096) as u32
            }
        })
        .collect();
    let x_t = Tensor::from_vec(x_t, (2, 1024), &Device::Cpu).unwrap();
    (chain, log_p, x_t)
}

fn bench(c: &mut Criterion) {
    let (chain, log_p, x_t) = inputs();
    let mut group = c.benchmark_group("ithq_2x4097x1024");
    group.sample_size(20);
    group.bench_function("q_posterior", |b| {
        b.iter(|| chain.q_posterior(&log_p, &x_t, 50).unwrap())
    });
    let mut noise = SeededNoise::new(1);
    group.bench_function("posterior_and_gumbel_step", |b| {
        b.iter(|| {
            let logits = chain.q_posterior(&log_p, &x_t, 50).unwrap();
            gumbel_argmax(&logits, &mut noise).unwrap()
        })
    });
    group.bench_function("truncate_top_r_0.86", |b| {
        b.iter(|| truncate(&log_p, Truncation::TopR(0.86)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
