//! Reproducible initialisation of a training `VarMap`. candle's CPU random generator cannot be
//! seeded, so a model built through a `VarBuilder` starts differently in every process; after
//! the modules have created their variables, [`seeded_init`] overwrites every one of them, in
//! sorted name order, from one seeded generator (rand's `StdRng`) according to a per-variable
//! [`InitRule`] — so the initial weights depend only on the seed and the set of variables.

use candle_core::Tensor;
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How one variable is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitRule {
    /// Every value equal.
    Const(f32),
    /// `N(0, std²)` (Box–Muller from the seeded stream).
    Normal(f32),
    /// `U(−bound, bound)`.
    Uniform(f32),
}

/// Overwrites every variable of `varmap` with values drawn by `rule(name, dims)` from one
/// `StdRng` seeded with `seed`, visiting names in sorted order (so the result depends only on
/// the seed and the set of variables).
pub fn seeded_init(
    varmap: &VarMap,
    seed: u64,
    rule: impl Fn(&str, &[usize]) -> InitRule,
) -> candle_core::Result<()> {
    let data = varmap.data().lock().expect("VarMap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = StdRng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = match rule(name, &dims) {
            InitRule::Const(c) => vec![c; n],
            InitRule::Uniform(b) => (0..n).map(|_| rng.random_range(-b..=b)).collect(),
            InitRule::Normal(std) => (0..n).map(|_| std * standard_normal(&mut rng)).collect(),
        };
        var.set(&Tensor::from_vec(values, dims.as_slice(), var.device())?)?;
    }
    Ok(())
}

/// One `N(0, 1)` draw (Box–Muller).
fn standard_normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// PyTorch's default initialisation of the VQ-Diffusion denoiser's modules, drawn from the
/// seeded stream: embedding tables (token, position, AdaLN timestep rows: names containing
/// `emb`) `N(0, 1)` as `nn.Embedding`; Linear weights `U(±1/√fan_in)` as `nn.Linear`;
/// LayerNorm weights 1 and every bias 0.
pub fn pytorch_default_rule(name: &str, dims: &[usize]) -> InitRule {
    if name.ends_with(".bias") {
        InitRule::Const(0.0)
    } else if dims.len() == 1 {
        InitRule::Const(1.0)
    } else if name.split('.').any(|part| part.contains("emb")) {
        InitRule::Normal(1.0)
    } else {
        let fan_in: usize = dims[1..].iter().product();
        InitRule::Uniform(1.0 / (fan_in.max(1) as f32).sqrt())
    }
}

/// A new `Transformer2DModel` of `config` initialised by [`pytorch_default_rule`] from `seed`,
/// written to the safetensors file `path` (a from-scratch denoiser to train).
pub fn write_fresh_transformer(
    config: &vq_transformer::Transformer2DConfig,
    seed: u64,
    path: &std::path::Path,
) -> crate::Result<()> {
    let varmap = VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(
        &varmap,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    );
    vq_transformer::Transformer2DModel::new(vb, config)
        .map_err(|e| crate::Error::InvalidSetting(format!("transformer: {e}")))?;
    seeded_init(&varmap, seed, pytorch_default_rule)?;
    crate::save_tensors_atomic(
        path,
        &varmap
            .data()
            .lock()
            .expect("VarMap lock poisoned")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;

    fn model(seed: u64) -> Vec<f32> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let w = vb.get((3, 4), "b.weight").unwrap();
        let c = vb.get(4, "a.bias").unwrap();
        seeded_init(&varmap, seed, |name, _| {
            if name.ends_with("bias") {
                InitRule::Const(0.5)
            } else {
                InitRule::Normal(0.1)
            }
        })
        .unwrap();
        let mut v = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.extend(c.to_vec1::<f32>().unwrap());
        v
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        assert_eq!(model(3), model(3));
        assert_ne!(model(3)[..12], model(4)[..12]);
        assert_eq!(model(3)[12..], [0.5; 4]);
    }

    #[test]
    fn the_default_rule_follows_pytorch_per_kind_of_variable() {
        use super::{InitRule, pytorch_default_rule};
        assert_eq!(
            pytorch_default_rule("out.bias", &[16]),
            InitRule::Const(0.0)
        );
        assert_eq!(
            pytorch_default_rule("norm_out.weight", &[16]),
            InitRule::Const(1.0)
        );
        assert_eq!(
            pytorch_default_rule("latent_image_embedding.emb.weight", &[17, 16]),
            InitRule::Normal(1.0)
        );
        assert_eq!(
            pytorch_default_rule("transformer_blocks.0.norm1.emb.weight", &[10, 16]),
            InitRule::Normal(1.0)
        );
        assert_eq!(
            pytorch_default_rule("transformer_blocks.0.ff.net.2.weight", &[16, 64]),
            InitRule::Uniform(0.125)
        );
    }
}
