//! Train a small denoiser on a token world whose likelihood is known exactly, with this crate
//! alone (plus candle-nn for the network), then evaluate and sample from it.
//!
//! The world (`TemplateWorld`): sequences of 16 tokens over 8 classes drawn from a mixture of 8
//! templates with 10 % per-position noise. The chain: VQ-Diffusion's mask-and-replace with the
//! paper's final rates (γ̄_T = 0.9, Kβ̄_T = 0.1), T = 50, importance-sampled timesteps, the VLB +
//! auxiliary loss. Reported: held-out ELBO in bits per token next to the true entropy and next to
//! the ELBO of the Bayes-optimal denoiser (the best any network can reach with this chain), and
//! the quality of samples from several samplers: the rate of template-consistent samples and
//! their mean log-likelihood under the true distribution.
//!
//! Run: `cargo run --release -p discrete-diffusion --example template_world [-- --steps 3000]`
//! (`--steps 200` is a quick smoke run).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Embedding, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use discrete_diffusion::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const CLASSES: usize = 8;
const LENGTH: usize = 16;
const STEPS_T: usize = 50;
const WIDTH: usize = 32;
const HIDDEN: usize = 512;

/// An MLP over the whole sequence: token + position + timestep embeddings → 2 hidden layers →
/// per-position logits over the real classes.
struct MlpDenoiser {
    tokens: Embedding,
    positions: Tensor,
    time: Embedding,
    hidden1: Linear,
    hidden2: Linear,
    out: Linear,
}

impl MlpDenoiser {
    fn new(vb: VarBuilder, states: usize) -> candle_core::Result<Self> {
        Ok(Self {
            tokens: candle_nn::embedding(states, WIDTH, vb.pp("tokens"))?,
            positions: vb.get_with_hints(
                (LENGTH, WIDTH),
                "positions",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.1,
                },
            )?,
            time: candle_nn::embedding(STEPS_T, LENGTH * WIDTH, vb.pp("time"))?,
            hidden1: candle_nn::linear(LENGTH * WIDTH, HIDDEN, vb.pp("hidden1"))?,
            hidden2: candle_nn::linear(HIDDEN, HIDDEN, vb.pp("hidden2"))?,
            out: candle_nn::linear(HIDDEN, LENGTH * CLASSES, vb.pp("out"))?,
        })
    }

    /// `log p̂(x_0 | x_t)`, `(B, K, L)`, with per-sample timesteps.
    fn forward(&self, x_t: &Tensor, ts: &[usize]) -> candle_core::Result<Tensor> {
        let b = x_t.dim(0)?;
        let t = Tensor::from_vec(
            ts.iter().map(|&t| t as u32).collect::<Vec<_>>(),
            b,
            x_t.device(),
        )?;
        let h = self
            .tokens
            .forward(x_t)?
            .broadcast_add(&self.positions)?
            .reshape((b, LENGTH * WIDTH))?;
        let h = (h + self.time.forward(&t)?)?;
        let h = self.hidden1.forward(&h)?.gelu_erf()?;
        let h = self.hidden2.forward(&h)?.gelu_erf()?;
        let logits = self
            .out
            .forward(&h)?
            .reshape((b, LENGTH, CLASSES))?
            .transpose(1, 2)?;
        candle_nn::ops::log_softmax(&logits, 1)
    }
}

impl Denoiser<()> for MlpDenoiser {
    fn log_p_x0(&self, x_t: &Tensor, t: usize, _: &()) -> Result<Tensor> {
        Ok(self.forward(x_t, &vec![t; x_t.dim(0)?])?)
    }
}

/// Share of samples within `threshold` of a template, and their mean log2-likelihood per token.
fn sample_quality(world: &TemplateWorld, x: &Tensor, threshold: usize) -> Result<(f64, f64)> {
    let rows = x.to_vec2::<u32>()?;
    let consistent = rows
        .iter()
        .filter(|r| world.nearest_template(r).1 <= threshold)
        .count();
    let log_lik: f64 = rows.iter().map(|r| world.log_prob(r)).sum::<f64>() / rows.len() as f64;
    Ok((
        consistent as f64 / rows.len() as f64,
        log_lik / LENGTH as f64 / std::f64::consts::LN_2,
    ))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args
        .iter()
        .position(|a| a == "--steps")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3000);
    let dev = Device::Cpu;
    let world = TemplateWorld::new(CLASSES, LENGTH, 8, 0.1, 42);
    let chain = MaskAndReplace::paper(CLASSES, STEPS_T)?;
    let entropy = world.entropy_bits_per_token(50_000, 0)?;

    let varmap = VarMap::new();
    let model = MlpDenoiser::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        chain.num_states(),
    )?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 2e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut times = TimestepSampler::new(TimestepSampling::Importance, STEPS_T);
    let mut rng = StdRng::seed_from_u64(1);
    let mut noise = SeededNoise::new(2);
    let config = LossConfig {
        aux_weight: 0.01,
        ..LossConfig::default()
    };
    let start = std::time::Instant::now();
    for step in 0..steps {
        let x0 = world.sample(128, &mut rng, &dev)?;
        let (ts, pt) = times.sample(128, &mut rng);
        let x_t = chain.q_sample(&x0, ts.clone(), &mut noise)?;
        let log_p = model.forward(&x_t, &ts)?;
        let loss = training_loss(&chain, &log_p, &x0, &x_t, &ts, &pt, &config)?;
        opt.backward_step(&loss.loss)?;
        times.update(&ts, &loss.vlb_per_sample)?;
        if step % (steps / 10).max(1) == 0 || step + 1 == steps {
            println!(
                "step {step:5}  loss {:.4}  vlb/token {:.4} nats  aux/token {:.4}  ({:.1} s)",
                loss.loss.to_scalar::<f32>()?,
                loss.vlb_per_token,
                loss.aux_per_token,
                start.elapsed().as_secs_f64()
            );
        }
    }

    // Held-out evaluation.
    let mut held_rng = StdRng::seed_from_u64(1_000_003);
    let held_out = world.sample(500, &mut held_rng, &dev)?;
    let trained = elbo_bits_per_token(&chain, &model, &(), &held_out, &mut SeededNoise::new(7))?;
    let bayes = elbo_bits_per_token(
        &chain,
        &world.bayes_denoiser(&chain),
        &(),
        &held_out,
        &mut SeededNoise::new(7),
    )?;
    println!(
        "\nheld-out bits per token: true entropy {entropy:.4} | Bayes-optimal denoiser ELBO {:.4} | trained ELBO {:.4}",
        bayes.bits_per_token, trained.bits_per_token
    );

    // Data distances decide what "template-consistent" means: within the 99th percentile.
    let data = world.sample(5000, &mut held_rng, &dev)?.to_vec2::<u32>()?;
    let mut distances: Vec<usize> = data.iter().map(|r| world.nearest_template(r).1).collect();
    distances.sort_unstable();
    let threshold = distances[distances.len() * 99 / 100];
    let (data_rate, data_ll) = sample_quality(&world, &Tensor::new(data, &dev)?, threshold)?;
    println!(
        "\n{:<34} {:>6} {:>12} {:>16}",
        "sampler", "calls", "consistent", "log2 p / token"
    );
    println!(
        "{:<34} {:>6} {:>11.1}% {:>16.3}",
        "data",
        "-",
        100.0 * data_rate,
        data_ll
    );
    let prior = |rule, per_call| {
        SamplingMethod::ImprovedPrior(ImprovedPrior {
            rule,
            max_per_call: per_call,
            schedule: UnmaskSchedule::Even,
        })
    };
    let samplers = [
        (
            "full chain (50 steps)",
            TimestepPlan::Full,
            SamplingMethod::Posterior,
        ),
        (
            "strided, exact posterior (10)",
            TimestepPlan::Strided(10),
            SamplingMethod::Posterior,
        ),
        (
            "sample_fast approximation (s=5)",
            TimestepPlan::SampleFast(5),
            SamplingMethod::Posterior,
        ),
        (
            "diffusers last 10 steps",
            TimestepPlan::LastSteps(10),
            SamplingMethod::Posterior,
        ),
        (
            "improved, random (rule 1)",
            TimestepPlan::Full,
            prior(PriorRule::Random, 1),
        ),
        (
            "improved, purity (rule 2, r=1)",
            TimestepPlan::Full,
            prior(PriorRule::Purity { prior_weight: 1.0 }, 1),
        ),
    ];
    for (name, plan, method) in samplers {
        let mut noise = SeededNoise::new(11);
        let init = initial_state(&chain, 1000, LENGTH, &mut noise, &dev)?;
        let config = SamplerConfig {
            plan,
            truncation: Truncation::None,
            method,
            start: None,
        };
        let mut calls = 0;
        let x = sample(&chain, &model, &(), &init, &config, &mut noise, |_| {
            calls += 1;
            Ok(())
        })?;
        let (rate, ll) = sample_quality(&world, &x, threshold)?;
        println!("{name:<34} {calls:>6} {:>11.1}% {ll:>16.3}", 100.0 * rate);
    }
    Ok(())
}
