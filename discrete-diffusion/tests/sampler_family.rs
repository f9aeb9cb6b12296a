//! The samplers beyond the posterior chain — MaskGIT (confidence, Halton, random order), ReMDM
//! remasking, threshold commits with editing, entropy-bounded steps, first-hitting and the
//! forward-backward predictor-corrector — checked for what each promises: its number of model
//! calls, no masked token left at the end, the same output for the same seed, and, with the
//! exact (Bayes) denoiser of a tiny template world, samples that follow the data distribution.

mod template_world_support;

use template_world_support::{run, tv_to_truth, world};

use candle_core::{Device, Tensor};
use discrete_diffusion::*;
use proptest::prelude::*;

fn absorbing(t: usize) -> AnyTransition {
    AnyTransition::Absorbing(
        Absorbing::new(4, BetaSchedule::MutualInformation { num_timesteps: t }).unwrap(),
    )
}

fn mask_replace(t: usize) -> AnyTransition {
    AnyTransition::MaskAndReplace(MaskAndReplace::paper(4, t).unwrap())
}

fn method(config: SamplingMethod) -> SamplerConfig {
    SamplerConfig {
        method: config,
        ..Default::default()
    }
}

fn every_method() -> Vec<(&'static str, SamplingMethod)> {
    vec![
        ("maskgit", SamplingMethod::MaskGit(MaskGit::confidence(2))),
        ("halton", SamplingMethod::MaskGit(MaskGit::halton(3))),
        (
            "random",
            SamplingMethod::MaskGit(MaskGit {
                order: UnmaskOrder::Random,
                ..MaskGit::halton(2)
            }),
        ),
        (
            "remdm",
            SamplingMethod::MaskGit(MaskGit {
                remask: Some(Remask::throughout(0.5)),
                ..MaskGit::halton(3)
            }),
        ),
        (
            "threshold",
            SamplingMethod::ThresholdCommit(ThresholdCommit {
                edit_threshold: Some(0.9),
                ..ThresholdCommit::new(0.8)
            }),
        ),
        (
            "entropy",
            SamplingMethod::EntropyBounded(EntropyBounded::new(0.5)),
        ),
        ("first-hitting", SamplingMethod::FirstHitting),
        (
            "pc",
            SamplingMethod::PredictorCorrector(ForwardBackwardCorrector {
                per_step: 2,
                last_steps: 3,
            }),
        ),
    ]
}

#[test]
fn every_sampler_resolves_every_mask_and_makes_the_calls_it_announces() {
    for tr in [absorbing(20), mask_replace(20)] {
        for (name, m) in every_method() {
            let (x, calls, planned) = run(&tr, &method(m.clone()), 16, 3);
            assert!(
                x.iter().flatten().all(|&v| v < 4),
                "{name}: a token is left masked: {x:?}"
            );
            match &m {
                SamplingMethod::MaskGit(g) => assert_eq!(calls, g.steps, "{name}"),
                SamplingMethod::PredictorCorrector(c) => {
                    assert_eq!(calls, 20 + c.extra_calls(20), "{name}")
                }
                // Data-dependent: at most one call per masked token (3), or per timestep.
                SamplingMethod::FirstHitting => assert!(calls <= 20, "{name}: {calls}"),
                _ => assert!((1..=3).contains(&calls), "{name}: {calls}"),
            }
            assert!(
                calls <= planned,
                "{name}: {calls} calls, {planned} announced"
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_sample() {
    let tr = mask_replace(20);
    for (name, m) in every_method() {
        let a = run(&tr, &method(m.clone()), 8, 11).0;
        let b = run(&tr, &method(m.clone()), 8, 11).0;
        let c = run(&tr, &method(m), 8, 12).0;
        assert_eq!(a, b, "{name}");
        assert_ne!(a, c, "{name}: another seed gave the same 8 samples");
    }
}

#[test]
fn exact_orders_sample_the_data_distribution() {
    // Sampling noise alone gives TV ≈ 0.05-0.07 for 3000 samples over 64 outcomes (see
    // tests/sampler.rs). One token per call in a value-independent order is the chain rule.
    let exact: Vec<(&str, SamplingMethod)> = vec![
        (
            "halton, 1 per call",
            SamplingMethod::MaskGit(MaskGit::halton(3)),
        ),
        (
            "random, 1 per call",
            SamplingMethod::MaskGit(MaskGit {
                order: UnmaskOrder::Random,
                ..MaskGit::halton(3)
            }),
        ),
        (
            "entropy-bounded, γ = 0",
            SamplingMethod::EntropyBounded(EntropyBounded::new(0.0)),
        ),
        (
            "threshold 1.0 (one per call, most confident first)",
            SamplingMethod::ThresholdCommit(ThresholdCommit::new(1.0)),
        ),
        ("first-hitting", SamplingMethod::FirstHitting),
    ];
    for (name, m) in exact {
        let (x, _, _) = run(&absorbing(30), &method(m), 3000, 5);
        let tv = tv_to_truth(&world(), &x);
        println!("absorbing, {name}: TV = {tv:.3}");
        assert!(tv < 0.12, "{name}: TV {tv}");
    }
    // The chains with replace mass: first-hitting is a strided sampler there, and the
    // corrector preserves the marginal of an exact reverse step.
    for (name, m) in [
        ("first-hitting", SamplingMethod::FirstHitting),
        (
            "predictor-corrector",
            SamplingMethod::PredictorCorrector(ForwardBackwardCorrector {
                per_step: 2,
                last_steps: 10,
            }),
        ),
    ] {
        let (x, _, _) = run(&mask_replace(30), &method(m), 3000, 6);
        let tv = tv_to_truth(&world(), &x);
        println!("mask-and-replace, {name}: TV = {tv:.3}");
        assert!(tv < 0.12, "{name}: TV {tv}");
    }
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
    let pc = method(SamplingMethod::PredictorCorrector(
        ForwardBackwardCorrector {
            per_step: 1,
            last_steps: 10,
        },
    ));
    let tv = tv_to_truth(&world(), &run(&uniform, &pc, 3000, 7).0);
    println!("uniform, predictor-corrector: TV = {tv:.3}");
    assert!(tv < 0.12, "uniform pc: TV {tv}");
}

#[test]
fn parallel_and_confidence_samplers_are_close_but_biased_as_documented() {
    // Committing dependent tokens together, or choosing them by their drawn values, is not
    // exact: measured here so a change in the bias shows. The template world's three tokens
    // are strongly dependent, the worst case.
    for (name, m, bound) in [
        (
            "maskgit (confidence order, 3 calls)",
            SamplingMethod::MaskGit(MaskGit::confidence(3)),
            0.15,
        ),
        (
            "remdm (halton, η = 0.5)",
            SamplingMethod::MaskGit(MaskGit {
                remask: Some(Remask::throughout(0.5)),
                ..MaskGit::halton(3)
            }),
            0.2,
        ),
        (
            "all at once (1 call)",
            SamplingMethod::MaskGit(MaskGit::halton(1)),
            0.7,
        ),
    ] {
        let (x, _, _) = run(&absorbing(30), &method(m), 3000, 8);
        let tv = tv_to_truth(&world(), &x);
        println!("absorbing, {name}: TV = {tv:.3}");
        assert!(tv < bound, "{name}: TV {tv}");
        if name.starts_with("all at once") {
            // Three dependent tokens drawn from their marginals: the test must see the error.
            assert!(tv > 0.3, "{name}: TV {tv}");
        }
    }
}

#[test]
fn unmasking_samplers_refuse_what_they_cannot_do() {
    let tr = mask_replace(10);
    let w = world();
    let bayes = w.bayes_denoiser(&tr);
    let mut noise = SeededNoise::new(0);
    let init = initial_state(&tr, 2, 3, &mut noise, &Device::Cpu).unwrap();
    let go = |config: SamplerConfig, noise: &mut SeededNoise| {
        sample(&tr, &bayes, &(), &init, &config, noise, |_| Ok(()))
            .unwrap_err()
            .to_string()
    };
    let strided = SamplerConfig {
        plan: TimestepPlan::Strided(5),
        ..method(SamplingMethod::FirstHitting)
    };
    assert!(go(strided, &mut noise).contains("leave the plan at Full"));
    let bad = method(SamplingMethod::MaskGit(MaskGit::halton(0)));
    assert!(go(bad, &mut noise).contains("at least 1 step"));
    let bad = method(SamplingMethod::EntropyBounded(EntropyBounded::new(-1.0)));
    assert!(go(bad, &mut noise).contains("entropy bound"));
    let bad = method(SamplingMethod::ThresholdCommit(ThresholdCommit::new(1.5)));
    assert!(go(bad, &mut noise).contains("threshold"));
    let uniform = AnyTransition::Uniform(
        Uniform::new(
            4,
            BetaSchedule::Linear {
                num_timesteps: 10,
                start: 0.01,
                end: 0.2,
            },
        )
        .unwrap(),
    );
    let ub = w.bayes_denoiser(&uniform);
    let init_u = initial_state(&uniform, 2, 3, &mut noise, &Device::Cpu).unwrap();
    let err = sample(
        &uniform,
        &ub,
        &(),
        &init_u,
        &method(SamplingMethod::MaskGit(MaskGit::halton(3))),
        &mut noise,
        |_| Ok(()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("mask state"), "{err}");
}

#[test]
fn unmasking_samplers_keep_known_tokens() {
    let tr = mask_replace(20);
    let w = world();
    let bayes = w.bayes_denoiser(&tr);
    let x0 = Tensor::new(&[[1u32, 2, 3], [0, 0, 0]], &Device::Cpu).unwrap();
    let known = Tensor::new(&[[1u8, 0, 1], [0, 1, 0]], &Device::Cpu).unwrap();
    for (name, m) in every_method() {
        for rule in [Reimpose::KeepData, Reimpose::ForwardSample] {
            let k = KnownTokens::new(&x0, &known, rule).unwrap();
            let mut noise = SeededNoise::new(2);
            let init = k
                .initial_state(&tr, 19, false, &mut noise, &Device::Cpu)
                .unwrap();
            let x = sample_with_known(
                &tr,
                &bayes,
                &(),
                &init,
                &method(m.clone()),
                Some(&k),
                &mut noise,
                |_| Ok(()),
            )
            .unwrap()
            .to_vec2::<u32>()
            .unwrap();
            assert_eq!(
                (x[0][0], x[0][2], x[1][1]),
                (1, 3, 0),
                "{name} {rule:?}: {x:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn maskgit_makes_exactly_min_steps_tokens_calls(steps in 1usize..8, seed in 0u64..50) {
        let (x, calls, _) = run(&absorbing(12), &method(SamplingMethod::MaskGit(MaskGit::confidence(steps))), 4, seed);
        prop_assert_eq!(calls, steps.min(3));
        prop_assert!(x.iter().flatten().all(|&v| v < 4));
    }

    #[test]
    fn entropy_bounded_calls_fall_as_the_bound_grows(seed in 0u64..50) {
        let calls = |bound: f64| run(&absorbing(12), &method(SamplingMethod::EntropyBounded(EntropyBounded::new(bound))), 1, seed).1;
        prop_assert_eq!(calls(0.0), 3);
        prop_assert_eq!(calls(1e9), 1);
    }
}
