//! Property tests of every invariant of the math, against the dense f64 reference.

use candle_core::{Device, Tensor};
use proptest::prelude::*;

use crate::dense_reference as dense;
use crate::*;

const TOL: f64 = 1e-9;

/// A random transition of one of the three families.
fn any_transition() -> impl Strategy<Value = AnyTransition> {
    let classes = 2usize..6;
    let steps = 2usize..10;
    (
        classes,
        steps,
        0u8..3,
        prop::collection::vec(0.02f64..0.9, 10),
        any::<[f64; 4]>(),
    )
        .prop_map(|(k, t, family, betas, r)| {
            let betas: Vec<f64> = betas[..t].to_vec();
            match family {
                0 => {
                    AnyTransition::Uniform(Uniform::new(k, BetaSchedule::Custom { betas }).unwrap())
                }
                1 => AnyTransition::Absorbing(
                    Absorbing::new(k, BetaSchedule::Custom { betas }).unwrap(),
                ),
                _ => {
                    let u = |x: f64| (x.abs() % 1.0).clamp(0.0, 1.0);
                    let alpha_start = 0.5 + 0.49 * u(r[0]);
                    let alpha_end = 1e-4 + (alpha_start - 1e-4) * 0.5 * u(r[1]);
                    // Tiny non-zero masses (< 1e-6) vanish in diffusers' `1 - (1 - γ̄)` step formula.
                    let gamma_start = match (1.0 - alpha_start) * u(r[2]) {
                        g if g < 1e-6 => 0.0,
                        g => g,
                    };
                    let gamma_end = match (1.0 - alpha_end - gamma_start) * u(r[3]) {
                        g if g < 1e-6 => gamma_start,
                        g => gamma_start + g,
                    };
                    let schedule = VqDiffusionSchedule {
                        num_vec_classes: None,
                        num_train_timesteps: t,
                        alpha_cum_start: alpha_start,
                        alpha_cum_end: alpha_end,
                        gamma_cum_start: gamma_start,
                        gamma_cum_end: gamma_end,
                    };
                    // Not every random set of constants gives valid steps (β_t ≥ 0).
                    AnyTransition::MaskAndReplace(
                        MaskAndReplace::new(k, &schedule)
                            .unwrap_or_else(|_| MaskAndReplace::paper(k, t).unwrap()),
                    )
                }
            }
        })
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

/// Column `(b, ·, n)` of a `(B, C, N)` tensor as probabilities.
fn column(x: &Tensor, b: usize, n: usize) -> Vec<f64> {
    let v = x.to_vec3::<f32>().unwrap();
    v[b].iter().map(|row| (row[n] as f64).exp()).collect()
}

fn random_log_p(k: usize, n: usize, seed: u64) -> Tensor {
    let mut noise = SeededNoise::new(seed);
    let g = noise.gumbel(&[1, k, n], &Device::Cpu).unwrap();
    log_normalise(&(g * 1.5).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rows_are_distributions(tr in any_transition()) {
        for t in 0..tr.num_timesteps() {
            for m in [dense::step(&tr, t), dense::matrix(&tr, tr.cumulative(t))] {
                for row in &m {
                    prop_assert!(row.iter().all(|&p| p >= 0.0));
                    prop_assert!((row.iter().sum::<f64>() - 1.0).abs() < TOL);
                }
            }
        }
    }

    #[test]
    fn cumulative_is_product_of_steps(tr in any_transition()) {
        for t in 0..tr.num_timesteps() {
            let closed = dense::matrix(&tr, tr.cumulative(t));
            let product = dense::product(&tr, None, t);
            for (a, b) in closed.iter().zip(&product) {
                prop_assert!(close(a, b, 1e-9), "t = {t}: {a:?} vs {b:?}");
            }
            for s in 0..t {
                let span = dense::matrix(&tr, tr.span(Some(s), t));
                let product = dense::product(&tr, Some(s), t);
                for (a, b) in span.iter().zip(&product) {
                    prop_assert!(close(a, b, 1e-9));
                }
            }
        }
    }

    #[test]
    fn mask_state_is_absorbing(tr in any_transition()) {
        if let Some(m) = tr.mask_index() {
            for t in (0..tr.num_timesteps()).filter(|&t| tr.cumulative(t).mask > 0.0) {
                let q = dense::step(&tr, t);
                prop_assert_eq!(q[m][m], 1.0);
                let x = Tensor::new(&[[m as u32, m as u32]], &Device::Cpu).unwrap();
                let x0 = Tensor::new(&[[0u32, 1]], &Device::Cpu).unwrap();
                let log_p = dense_one_hot(&x0, tr.num_states(), tr.num_classes());
                // From a masked x_t, the posterior never puts mass on... anything but what Bayes says;
                // and a masked x_t cannot have come from x_{t-1} unless x_{t-1} is masked or masking happened.
                let post = tr.q_posterior(&log_p, &x, t).unwrap();
                let col = column(&post, 0, 0);
                prop_assert!((col.iter().sum::<f64>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn posterior_is_bayes(tr in any_transition(), seed in 0u64..1000) {
        let k = tr.num_classes();
        let dev = Device::Cpu;
        let n = 6;
        let x0: Vec<u32> = (0..n).map(|i| ((i as u64 * 7 + seed) % k as u64) as u32).collect();
        let x0 = Tensor::from_vec(x0, (1, n), &dev).unwrap();
        let mut noise = SeededNoise::new(seed);
        for t in 0..tr.num_timesteps() {
            let x_t = tr.q_sample(&x0, t, &mut noise).unwrap();
            let log_p = dense_one_hot(&x0, tr.num_states(), k);
            let post = tr.q_posterior(&log_p, &x_t, t).unwrap();
            let xs = x0.to_vec2::<u32>().unwrap();
            let ts = x_t.to_vec2::<u32>().unwrap();
            for pos in 0..n {
                let want = dense::bayes_posterior(&tr, xs[0][pos] as usize, ts[0][pos] as usize, t, t.checked_sub(1));
                let want = want.expect("x_t was sampled from q(x_t | x_0), so it is compatible");
                let got = column(&post, 0, pos);
                prop_assert!(close(&got[..want.len()], &want, 2e-5), "t={t} pos={pos}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn x0_parameterised_step_matches_dense(tr in any_transition(), seed in 0u64..1000, stride in 1usize..4) {
        let k = tr.num_classes();
        let states = tr.num_states();
        let dev = Device::Cpu;
        let n = states;
        let x_t = Tensor::from_vec((0..n as u32).collect::<Vec<_>>(), (1, n), &dev).unwrap();
        let log_p = random_log_p(k, n, seed);
        for t in 0..tr.num_timesteps() {
            let to = t.checked_sub(stride);
            let post = tr.q_posterior_strided(&log_p, &x_t, t, to).unwrap();
            if stride == 1 {
                let single = tr.q_posterior(&log_p, &x_t, t).unwrap();
                let diff = (&post - &single).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
                prop_assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "strided Δ=1 differs from the single step");
            }
            for pos in 0..n {
                let p: Vec<f64> = column(&log_p, 0, pos);
                let Some(want) = dense::x0_parameterised(&tr, &p, pos, t, to) else {
                    continue; // x_t = pos is impossible at t (e.g. a mask before any masking)
                };
                let got = column(&post, 0, pos);
                prop_assert!((got.iter().sum::<f64>() - 1.0).abs() < 1e-4, "not normalised: {got:?}");
                prop_assert!(close(&got, &want, 1e-4), "t={t} to={to:?} pos={pos}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn kl_is_nonnegative_and_zero_at_truth(tr in any_transition(), seed in 0u64..1000) {
        let k = tr.num_classes();
        let dev = Device::Cpu;
        let n = 8;
        let x0 = Tensor::from_vec((0..n).map(|i| ((i as u64 + seed) % k as u64) as u32).collect::<Vec<_>>(), (1, n), &dev).unwrap();
        let wrong = Tensor::from_vec((0..n).map(|i| ((i as u64 + seed + 1) % k as u64) as u32).collect::<Vec<_>>(), (1, n), &dev).unwrap();
        let mut noise = SeededNoise::new(seed);
        let cfg = LossConfig::default();
        for t in 1..tr.num_timesteps() {
            let x_t = tr.q_sample(&x0, t, &mut noise).unwrap();
            let truth = dense_one_hot(&x0, tr.num_states(), k);
            let terms = vlb_terms(&tr, &truth, &x0, &x_t, &[t], &cfg).unwrap();
            let kl = terms.vlb.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            prop_assert!(kl.iter().all(|&v| v.abs() < 1e-4), "KL at the truth: {kl:?}");
            let random = random_log_p(k, n, seed + 1);
            let terms = vlb_terms(&tr, &random, &x0, &x_t, &[t], &cfg).unwrap();
            let kl = terms.vlb.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            prop_assert!(kl.iter().all(|&v| v > -1e-4), "negative KL: {kl:?}");
            // A confidently wrong prediction costs something wherever x_t is masked.
            let bad = dense_one_hot(&wrong, tr.num_states(), k);
            let terms = vlb_terms(&tr, &bad, &x0, &x_t, &[t], &cfg).unwrap();
            let kl = terms.vlb.to_vec2::<f32>().unwrap();
            let xt = x_t.to_vec2::<u32>().unwrap();
            for pos in 0..n {
                // Mass the posterior of a masked x_t puts on real classes: γ_t ᾱ_{t-1} / γ̄_t.
                let informative = tr.step(t).mask * tr.cumulative(t - 1).stay / tr.cumulative(t).mask;
                if Some(xt[0][pos] as usize) == tr.mask_index() && informative > 1e-2 {
                    prop_assert!(kl[0][pos] > 1e-3, "t={t} pos={pos}: KL {}", kl[0][pos]);
                }
            }
        }
    }
}

/// `log_one_hot` restricted to the real classes, as a "prediction".
fn dense_one_hot(x0: &Tensor, states: usize, k: usize) -> Tensor {
    log_one_hot(x0, states).unwrap().narrow(1, 0, k).unwrap()
}

#[test]
fn log_add_exp_handles_infinities() {
    let dev = Device::Cpu;
    let a = Tensor::new(&[f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 1.0], &dev).unwrap();
    let b = Tensor::new(&[f32::NEG_INFINITY, f32::NEG_INFINITY, 2.0, 1.0], &dev).unwrap();
    let r = log_add_exp(&a, &b).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(r[0], f32::NEG_INFINITY);
    assert_eq!(r[1], 0.0);
    assert_eq!(r[2], 2.0);
    assert!((r[3] - (1.0 + 2f32.ln())).abs() < 1e-6);
    let all_inf = Tensor::new(&[[[f32::NEG_INFINITY], [f32::NEG_INFINITY]]], &dev).unwrap();
    let lse = log_sum_exp(&all_inf, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(lse, vec![f32::NEG_INFINITY]);
}

#[test]
fn released_schedule_matches_reference_table() {
    // docs/reference-behaviour.md §2.1 table (ITHQ: T = 100, K = 4096).
    let mr = MaskAndReplace::released(4096, 100).unwrap();
    let s1 = mr.step(1);
    assert!((s1.stay - 0.989899).abs() < 1e-6);
    assert!((s1.replace - 2.4661e-12).abs() < 1e-15);
    assert!((s1.mask - 0.0101009).abs() < 1e-6);
    let s99 = mr.step(99);
    assert!((s99.stay - 8.9022e-4).abs() < 1e-7);
    assert!((s99.mask - 0.999011).abs() < 1e-6);
    assert!((mr.cumulative(50).stay - 0.494949).abs() < 1e-6);
    assert!((mr.cumulative(98).mask - 0.989889).abs() < 1e-6);
    let tables = LogTables::new(&mr);
    assert_eq!(tables.log_cumprod_at.len(), 101);
    assert_eq!(tables.log_cumprod_at[100], 0.0);
    assert_eq!(tables.log_cumprod_bt[100], f32::NEG_INFINITY);
    assert_eq!(tables.log_cumprod_ct[100], f32::NEG_INFINITY);
}

#[test]
fn scheduler_config_deserializes() {
    let json = r#"{"_class_name": "VQDiffusionScheduler", "_diffusers_version": "0.8.0.dev0",
        "alpha_cum_end": 9e-06, "alpha_cum_start": 0.99999, "gamma_cum_end": 0.99999,
        "gamma_cum_start": 9e-06, "num_train_timesteps": 100, "num_vec_classes": 4097}"#;
    let s: VqDiffusionSchedule = serde_json::from_str(json).unwrap();
    assert_eq!(
        s,
        VqDiffusionSchedule {
            num_vec_classes: Some(4097),
            ..VqDiffusionSchedule::released(100)
        }
    );
    let mr = MaskAndReplace::from_scheduler_config(&s).unwrap();
    assert_eq!(mr.num_classes(), 4096);
    let bad = r#"{"num_vec_classes": 5, "beta_schedule": "linear"}"#;
    let err = serde_json::from_str::<VqDiffusionSchedule>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("beta_schedule"), "{err}");
}

#[test]
fn truncation_keeps_top1_and_crossing_entry() {
    let dev = Device::Cpu;
    let p = [0.5f32, 0.3, 0.15, 0.05];
    let log_p = Tensor::from_vec(
        p.iter().map(|x| x.ln()).collect::<Vec<_>>(),
        (1, 4, 1),
        &dev,
    )
    .unwrap();
    let kept = |r: f32| -> Vec<bool> {
        truncate(&log_p, Truncation::TopR(r))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.is_finite())
            .collect()
    };
    assert_eq!(kept(0.1), vec![true, false, false, false]);
    assert_eq!(kept(0.6), vec![true, true, false, false]);
    assert_eq!(kept(0.79), vec![true, true, false, false]);
    assert_eq!(kept(0.81), vec![true, true, true, false]);
    assert_eq!(kept(1.0), vec![true, true, true, true]);
    let top2 = truncate(&log_p, Truncation::TopK(2))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(top2.iter().filter(|v| v.is_finite()).count(), 2);
    assert!(truncate(&log_p, Truncation::TopR(0.0)).is_err());
    assert!(truncate(&log_p, Truncation::TopR(1.5)).is_err());
}

#[test]
fn replay_noise_uses_reference_formula() {
    let mut noise = ReplayNoise::new(vec![0.0, 0.5, 0.999]);
    let g = noise
        .gumbel(&[3], &Device::Cpu)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let f = |u: f32| -(-(u + 1e-30f32).ln() + 1e-30f32).ln();
    assert_eq!(g, vec![f(0.0), f(0.5), f(0.999)]);
    assert!(matches!(
        noise.gumbel(&[1], &Device::Cpu),
        Err(Error::NoiseExhausted { .. })
    ));
}

#[test]
fn timestep_plans() {
    let steps = |p: TimestepPlan| {
        p.steps(10)
            .unwrap()
            .iter()
            .map(|s| (s.t, s.rule))
            .collect::<Vec<_>>()
    };
    let full = steps(TimestepPlan::Full);
    assert_eq!(full.len(), 10);
    assert_eq!(full[0], (9, PosteriorRule::Exact { to: 8 }));
    assert_eq!(full[9], (0, PosteriorRule::ToData));
    assert_eq!(steps(TimestepPlan::Strided(10)), full);
    let strided = steps(TimestepPlan::Strided(5));
    assert_eq!(
        strided.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![9, 7, 5, 3, 1]
    );
    assert_eq!(strided[4].1, PosteriorRule::ToData);
    assert_eq!(strided[0].1, PosteriorRule::Exact { to: 7 });
    let last = steps(TimestepPlan::LastSteps(3));
    assert_eq!(last.iter().map(|s| s.0).collect::<Vec<_>>(), vec![2, 1, 0]);
    // Original sample_fast with infer_speed 2: 9, 7, 5, 3, 1, 0 with posteriors at t - 1.
    let fast = steps(TimestepPlan::SampleFast(2));
    assert_eq!(
        fast.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![9, 7, 5, 3, 1, 0]
    );
    assert_eq!(fast[0].1, PosteriorRule::SingleStepAt { at: 8 });
    assert_eq!(fast[4].1, PosteriorRule::SingleStepAt { at: 1 });
    assert_eq!(fast[5].1, PosteriorRule::ToData);
    assert!(TimestepPlan::LastSteps(11).steps(10).is_err());
    assert!(TimestepPlan::Strided(0).steps(10).is_err());
}

#[test]
fn importance_sampler_warms_up_then_follows_loss() {
    use rand::SeedableRng;
    let mut s = TimestepSampler::new(TimestepSampling::Importance, 4);
    assert!(s.probabilities().iter().all(|&p| (p - 0.25).abs() < 1e-12));
    for _ in 0..=IMPORTANCE_WARMUP {
        s.update(&[0, 1, 2, 3], &[1.0, 1.0, 1.0, 10.0]).unwrap();
    }
    let p = s.probabilities();
    assert!(p[3] > p[2] && (p[0] - p[1]).abs() < 1e-12);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let (ts, ps) = s.sample(1000, &mut rng);
    let frac3 = ts.iter().filter(|&&t| t == 3).count() as f64 / 1000.0;
    assert!((frac3 - p[3]).abs() < 0.05);
    assert!(ps.iter().zip(&ts).all(|(q, &t)| *q == p[t]));
}

#[test]
fn mutual_information_schedules_are_linear() {
    for tr in [
        AnyTransition::Absorbing(
            Absorbing::new(16, BetaSchedule::MutualInformation { num_timesteps: 20 }).unwrap(),
        ),
        AnyTransition::Uniform(
            Uniform::new(16, BetaSchedule::MutualInformation { num_timesteps: 20 }).unwrap(),
        ),
    ] {
        let h = 16f64.ln();
        for t in 0..20 {
            let want = (1.0 - (t + 1) as f64 / 20.0) * h;
            assert!((tr.mutual_information(t) - want).abs() < 1e-6, "t={t}");
        }
    }
}

#[test]
fn absorbing_posterior_pins_unmasked_tokens() {
    // With zero replace mass, an unmasked x_t must stay, whatever p̂ says.
    let tr = Absorbing::new(
        4,
        BetaSchedule::Linear {
            num_timesteps: 5,
            start: 0.1,
            end: 0.5,
        },
    )
    .unwrap();
    let x_t = Tensor::new(&[[2u32, 4]], &Device::Cpu).unwrap();
    let log_p = random_log_p(4, 2, 3);
    let post = tr.q_posterior(&log_p, &x_t, 3).unwrap();
    let col = column(&post, 0, 0);
    assert!((col[2] - 1.0).abs() < 1e-6, "{col:?}");
    let masked = column(&post, 0, 1);
    assert!((masked.iter().sum::<f64>() - 1.0).abs() < 1e-5);
}

#[test]
fn invalid_mask_and_replace_steps_are_rejected() {
    let err = MaskAndReplace::from_cumulative(2, vec![0.5, 0.16], vec![0.0, 0.72]).unwrap_err();
    assert!(err.to_string().contains("step 1"), "{err}");
}

#[test]
fn errors_name_the_problem() {
    let mr = MaskAndReplace::released(4, 5).unwrap();
    let x = Tensor::new(&[[0u32, 9]], &Device::Cpu).unwrap();
    let log_p = random_log_p(4, 2, 0);
    let err = mr.q_posterior(&log_p, &x, 1).unwrap_err().to_string();
    assert!(err.contains("token id 9"), "{err}");
    let x = Tensor::new(&[[0u32, 1]], &Device::Cpu).unwrap();
    let err = mr.q_posterior(&log_p, &x, 5).unwrap_err().to_string();
    assert!(err.contains("timestep 5"), "{err}");
    let err = mr
        .q_posterior(&log_p.narrow(1, 0, 3).unwrap(), &x, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("log_p_x0"), "{err}");
}

#[test]
fn training_loss_backpropagates_to_the_prediction() {
    let dev = Device::Cpu;
    let tr = MaskAndReplace::paper(5, 10).unwrap();
    let logits = candle_core::Var::from_tensor(&(random_log_p(5, 6, 1) * 0.3).unwrap()).unwrap();
    let x0 = Tensor::new(&[[0u32, 1, 2, 3, 4, 0]], &dev).unwrap();
    for t in [0usize, 3, 9] {
        let x_t = tr
            .q_sample(&x0, t, &mut SeededNoise::new(t as u64))
            .unwrap();
        let log_p = log_normalise(logits.as_tensor()).unwrap();
        let loss =
            training_loss(&tr, &log_p, &x0, &x_t, &[t], &[0.1], &LossConfig::default()).unwrap();
        let grads = loss.loss.backward().unwrap();
        let g = grads
            .get(logits.as_tensor())
            .expect("no gradient reached the logits");
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(
            norm.is_finite() && norm > 0.0,
            "t = {t}: gradient norm {norm}"
        );
    }
}

#[test]
fn unmask_schedules_cover_every_position() {
    for per_call in [5, 1024] {
        let counts = UnmaskSchedule::original_ithq(per_call)
            .counts(100, 1024)
            .unwrap();
        assert_eq!(counts.iter().skip(1).sum::<usize>(), 1024);
    }
    let even = UnmaskSchedule::Even.counts(10, 16).unwrap();
    assert_eq!(even.iter().skip(1).sum::<usize>(), 16);
    assert!(even[9] >= even[1]);
    assert!(UnmaskSchedule::Custom(vec![0, 1, 2]).counts(3, 4).is_err());
}

#[test]
fn configs_round_trip_through_serde() {
    let config = SamplerConfig {
        plan: TimestepPlan::Strided(25),
        truncation: Truncation::TopR(0.86),
        method: SamplingMethod::ImprovedPrior(ImprovedPrior {
            rule: PriorRule::Purity { prior_weight: 1.0 },
            max_per_call: 5,
            schedule: UnmaskSchedule::Even,
        }),
        start: Some(40),
    };
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<SamplerConfig>(&json).unwrap(),
        config
    );
    let tc = TransitionConfig::MaskAndReplaceFinal {
        num_classes: 16,
        num_timesteps: 20,
        gamma_bar_final: 0.9,
        k_beta_bar_final: 0.1,
    };
    let json = serde_json::to_string(&tc).unwrap();
    let back: TransitionConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.build().unwrap(), tc.build().unwrap());
    let beta: BetaSchedule =
        serde_json::from_str(r#"{"type": "cosine", "num_timesteps": 10}"#).unwrap();
    assert_eq!(
        beta,
        BetaSchedule::Cosine {
            num_timesteps: 10,
            offset: 0.008
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn fused_posterior_kernel_equals_composite(tr in any_transition(), seed in 0u64..1000, stride in 1usize..3) {
        let k = tr.num_classes();
        let n = 7;
        let dev = Device::Cpu;
        let log_p = Tensor::cat(&[random_log_p(k, n, seed), random_log_p(k, n, seed + 1)], 0).unwrap();
        let x_t = Tensor::from_vec((0..2 * n as u32).map(|i| i % tr.num_states() as u32).collect::<Vec<_>>(), (2, n), &dev).unwrap();
        for t in 0..tr.num_timesteps() {
            let to = t.checked_sub(stride);
            let fused = tr.q_posterior_strided(&log_p, &x_t, t, to).unwrap();
            crate::posterior::FORCE_COMPOSITE.with(|f| f.set(true));
            let composite = tr.q_posterior_strided(&log_p, &x_t, t, to).unwrap();
            crate::posterior::FORCE_COMPOSITE.with(|f| f.set(false));
            let (a, b) = (fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(), composite.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let same = x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-4 * (1.0 + y.abs());
                prop_assert!(same, "t={t} to={to:?} [{i}]: fused {x} vs composite {y}");
            }
        }
    }
}

#[test]
fn seeded_noise_is_reproducible_and_gumbel_distributed() {
    let dev = Device::Cpu;
    let draw = |seed| {
        let mut n = SeededNoise::new(seed);
        let a = n
            .gumbel(&[3, 100_000], &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = n.gumbel(&[10], &dev).unwrap().to_vec1::<f32>().unwrap();
        (a, b)
    };
    let (a1, b1) = draw(5);
    let (a2, b2) = draw(5);
    assert_eq!(a1, a2);
    assert_eq!(b1, b2);
    assert_ne!(draw(6).0, a1);
    // Gumbel(0, 1): mean = Euler–Mascheroni constant, variance = π²/6.
    let mean = a1.iter().map(|&x| x as f64).sum::<f64>() / a1.len() as f64;
    let var = a1.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a1.len() as f64;
    assert!((mean - 0.5772).abs() < 0.01, "mean {mean}");
    assert!(
        (var - std::f64::consts::PI.powi(2) / 6.0).abs() < 0.03,
        "variance {var}"
    );
}

/// The real-class part of the true posterior, renormalised: what a perfect direct network
/// outputs.
fn perfect_direct_output(tr: &AnyTransition, x0: &Tensor, x_t: &Tensor, t: usize) -> Tensor {
    let k = tr.num_classes();
    let truth = dense_one_hot(x0, tr.num_states(), k);
    let post = crate::posterior::q_posterior(tr, &truth, x_t, &Timesteps::Shared(t)).unwrap();
    log_normalise(&post.narrow(1, 0, k).unwrap().maximum(-1e4f32).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A direct prediction is a distribution over all states; fed the true posterior's real part
    /// it reproduces the true posterior (the mask mass does not depend on x_0: Improved
    /// VQ-Diffusion's Lemma 1), so its KL is zero there and non-negative elsewhere.
    #[test]
    fn direct_posterior_is_a_distribution_and_exact_at_truth(tr in any_transition(), seed in 0u64..1000) {
        let k = tr.num_classes();
        let dev = Device::Cpu;
        let n = 6;
        let x0 = Tensor::from_vec((0..n).map(|i| ((i as u64 * 7 + seed) % k as u64) as u32).collect::<Vec<_>>(), (1, n), &dev).unwrap();
        let mut noise = SeededNoise::new(seed);
        let cfg = LossConfig { parameterisation: Parameterisation::Direct, ..LossConfig::default() };
        for t in 1..tr.num_timesteps() {
            let x_t = tr.q_sample(&x0, t, &mut noise).unwrap();
            let random = random_log_p(k, n, seed + t as u64);
            let p = direct_posterior(&tr, &random, &x_t, &Timesteps::Shared(t)).unwrap();
            for pos in 0..n {
                let total: f64 = column(&p, 0, pos).iter().sum();
                prop_assert!((total - 1.0).abs() < 1e-4, "t={t} pos={pos}: total {total}");
            }
            let perfect = perfect_direct_output(&tr, &x0, &x_t, t);
            let truth = dense_one_hot(&x0, tr.num_states(), k);
            let expected = crate::posterior::q_posterior(&tr, &truth, &x_t, &Timesteps::Shared(t)).unwrap();
            let got = direct_posterior(&tr, &perfect, &x_t, &Timesteps::Shared(t)).unwrap();
            for pos in 0..n {
                let (e, g) = (column(&expected, 0, pos), column(&got, 0, pos));
                prop_assert!(close(&e, &g, 1e-4), "t={t} pos={pos}: {e:?} vs {g:?}");
            }
            let kl = vlb_terms(&tr, &perfect, &x0, &x_t, &[t], &cfg).unwrap().vlb;
            let kl = kl.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            prop_assert!(kl.iter().all(|&v| v.abs() < 1e-3), "KL at the truth: {kl:?}");
            let kl = vlb_terms(&tr, &random, &x0, &x_t, &[t], &cfg).unwrap().vlb;
            let kl = kl.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            prop_assert!(kl.iter().all(|&v| v > -1e-4), "negative KL: {kl:?}");
        }
    }
}

#[test]
fn direct_denoisers_refuse_strided_and_purity_sampling() {
    let tr = MaskAndReplace::paper(4, 10).unwrap();
    let net = FnDenoiser(|x: &Tensor, _t: usize, _c: &()| {
        let (b, n) = x.dims2()?;
        log_normalise(&Tensor::zeros(
            (b, 4, n),
            candle_core::DType::F32,
            x.device(),
        )?)
    });
    let direct = WithParameterisation {
        inner: &net,
        parameterisation: Parameterisation::Direct,
    };
    let init = initial_state(&tr, 2, 3, &mut SeededNoise::new(0), &Device::Cpu).unwrap();
    let full = SamplerConfig::default();
    let out = sample(
        &tr,
        &direct,
        &(),
        &init,
        &full,
        &mut SeededNoise::new(1),
        |_| Ok(()),
    )
    .unwrap();
    assert!(
        out.to_vec2::<u32>()
            .unwrap()
            .iter()
            .flatten()
            .all(|&v| v < 4)
    );
    let strided = SamplerConfig {
        plan: TimestepPlan::Strided(5),
        ..SamplerConfig::default()
    };
    let err = sample(
        &tr,
        &direct,
        &(),
        &init,
        &strided,
        &mut SeededNoise::new(1),
        |_| Ok(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("x0 parameterisation"), "{err}");
}
