//! The plain matrix product the transformer is made of, alone: the ITHQ feed-forward's first
//! projection, `(2·1024, 1408) × (1408, 5632)`, through [`vq_nn::Linear`] without a bias (the
//! same GEMM backend every layer uses) and through `torch.nn.functional.linear`. Its GFLOP/s is
//! the ceiling the transformer's effective rate is measured against.

use candle_core::{DType, Module, Tensor};
use vq_nn::Linear;

use crate::measure::{Measurement, time_reps};
use crate::{Options, measurement};

/// Rows (batch 2 × 1024 tokens), input and output width.
pub const SHAPE: (usize, usize, usize) = (2048, 1408, 5632);

/// `x Wᵀ` with `W` stored as the variant's dtype, or (`int8`) quantised to 8 bits per output
/// channel with the activations quantised per row at every call.
pub fn product(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let (m, k, n) = SHAPE;
    let dtype = match variant {
        "bf16" => DType::BF16,
        _ => DType::F32,
    };
    let weight = Tensor::randn(0f32, 0.02, (n, k), &o.device)?.to_dtype(dtype)?;
    let linear = Linear::from_tensors(weight, None);
    let linear = if variant == "int8" {
        linear.to_int8()?
    } else {
        linear
    };
    let x = Tensor::randn(0f32, 1.0, (m, k), &o.device)?.to_dtype(linear.input_dtype())?;
    let seconds = time_reps(2, o.reps, || o.sync(&linear.forward(&x)?))?;
    Ok(measurement(
        "gemm",
        variant,
        seconds,
        Some(2.0 * (m * k * n) as f64),
        match linear.int8_weight() {
            Some(_) => format!("{m}x{k} · {k}x{n}, int8 weights and activations"),
            None => format!("{m}x{k} · {k}x{n}, activations {:?}", linear.input_dtype()),
        },
    ))
}
