//! Shared by the sampler tests: the tiny template world they sample and the total-variation
//! distance of samples from its exact distribution.

use discrete_diffusion::TemplateWorld;

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
