//! Reproducible parameter initialisation of a training `VarMap`. candle's CPU RNG cannot be
//! seeded, so every variable is overwritten, in sorted key order, from a seeded `StdRng` with
//! PyTorch's defaults for the layer it belongs to:
//!
//! * conv / linear weights and their biases: `U(±1/√fan_in)` (`kaiming_uniform(a=√5)`);
//! * GroupNorm (rank-1 weight): weight 1, bias 0;
//! * `quantize.embedding.weight`: `U(±1/K)` as diffusers' `VectorQuantizer`.

use candle_core::Tensor;
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// Key of the codebook in the state dict.
pub const CODEBOOK_KEY: &str = "quantize.embedding.weight";

/// Overwrites every variable of `varmap` with seeded PyTorch-style initial values.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("VarMap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = StdRng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if name == CODEBOOK_KEY {
            let bound = 1.0 / dims[0] as f32;
            (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
        } else if let Some(stem) = name.strip_suffix(".bias") {
            let weight = data
                .get(&format!("{stem}.weight"))
                .map(|w| w.dims().to_vec());
            match weight {
                Some(w) if w.len() >= 2 => {
                    let bound = fan_in_bound(&w);
                    (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
                }
                _ => vec![0.0; n],
            }
        } else if dims.len() == 1 {
            vec![1.0; n]
        } else {
            let bound = fan_in_bound(&dims);
            (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
        };
        var.set(&Tensor::from_vec(values, dims.as_slice(), var.device())?)?;
    }
    Ok(())
}

fn fan_in_bound(weight_dims: &[usize]) -> f32 {
    let fan_in: usize = weight_dims[1..].iter().product();
    1.0 / (fan_in.max(1) as f32).sqrt()
}
