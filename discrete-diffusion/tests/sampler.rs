//! End-to-end checks of the samplers with the exact (Bayes-optimal) denoiser of a tiny
//! template world: sampled sequences must follow the data distribution, and the ELBO of the
//! exact denoiser must bound the true entropy from above, tightly.

mod template_world_support;

use candle_core::Device;
use discrete_diffusion::*;
use rand::SeedableRng;
use template_world_support::{tv_to_truth, world};

/// TV to the truth of 3000 samples drawn with the exact denoiser.
fn run(transition: &AnyTransition, config: &SamplerConfig, seed: u64) -> f64 {
    tv_to_truth(
        &world(),
        &template_world_support::run(transition, config, 3000, seed).0,
    )
}

#[test]
fn samplers_reproduce_the_data_distribution() {
    // Sampling noise alone gives TV ≈ 0.05-0.07 for 3000 samples over 64 outcomes.
    let absorbing = AnyTransition::Absorbing(
        Absorbing::new(4, BetaSchedule::MutualInformation { num_timesteps: 30 }).unwrap(),
    );
    let mask_replace = AnyTransition::MaskAndReplace(MaskAndReplace::paper(4, 30).unwrap());
    let uniform = AnyTransition::Uniform(
        Uniform::new(
            4,
            BetaSchedule::Cosine {
                num_timesteps: 30,
                offset: 0.008,
            },
        )
        .unwrap(),
    );
    for (name, tr) in [
        ("absorbing", &absorbing),
        ("mask-and-replace", &mask_replace),
        ("uniform", &uniform),
    ] {
        let full = run(tr, &SamplerConfig::default(), 1);
        println!("{name}: full chain TV = {full:.3}");
        assert!(full < 0.12, "{name}: TV {full}");
        let strided = run(
            tr,
            &SamplerConfig {
                plan: TimestepPlan::Strided(10),
                ..Default::default()
            },
            2,
        );
        println!("{name}: strided(10) TV = {strided:.3}");
        assert!(strided < 0.15, "{name}: strided TV {strided}");
    }
    let purity = SamplerConfig {
        method: SamplingMethod::ImprovedPrior(ImprovedPrior {
            rule: PriorRule::Purity { prior_weight: 0.0 },
            max_per_call: 1,
            schedule: UnmaskSchedule::Even,
        }),
        ..Default::default()
    };
    let tv = run(&absorbing, &purity, 3);
    println!("absorbing: purity sampler TV = {tv:.3}");
    assert!(tv < 0.12, "purity TV {tv}");
}

#[test]
fn exact_denoiser_elbo_bounds_the_entropy() {
    let w = TemplateWorld::new(6, 8, 4, 0.1, 3);
    let tr = MaskAndReplace::paper(6, 40).unwrap();
    let entropy = w.entropy_bits_per_token(20_000, 0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x0 = w.sample(400, &mut rng, &Device::Cpu).unwrap();
    let mut noise = SeededNoise::new(5);
    let report = elbo_bits_per_token(&tr, &w.bayes_denoiser(&tr), &(), &x0, &mut noise).unwrap();
    println!(
        "entropy {entropy:.4} bits/token, exact-denoiser ELBO {:.4}",
        report.bits_per_token
    );
    assert!(
        report.bits_per_token > entropy - 0.03,
        "ELBO below the entropy"
    );
    assert!(
        report.bits_per_token < entropy + 0.25,
        "ELBO far above the entropy"
    );
}
