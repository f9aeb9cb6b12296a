//! Micro-benchmarks of the CPU layers at the ITHQ transformer's shapes (batch 2 = the guidance
//! batch of one image, 1024 tokens, width 1408 = 16 heads × 88, feed-forward 5632, 77 text
//! tokens): each op alone, best of 5, with its effective GFLOP/s.
//!
//! ```text
//! cargo bench -p vq-nn --bench kernels [-- --dtype bf16]
//! ```

use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use vq_nn::{AttentionPrecision, Linear, multi_head_attention};

fn time(name: &str, flops: f64, mut f: impl FnMut() -> Tensor) {
    let mut best = f64::INFINITY;
    drop(f());
    for _ in 0..5 {
        let s = Instant::now();
        drop(f());
        best = best.min(s.elapsed().as_secs_f64());
    }
    let rate = if flops > 0.0 {
        format!("{:7.0} GFLOP/s", flops / best / 1e9)
    } else {
        String::new()
    };
    println!("{name:44} {:8.2} ms {rate}", best * 1e3);
}

fn main() -> candle_core::Result<()> {
    vq_nn::tune_allocator();
    let bf16 = std::env::args().any(|a| a == "bf16");
    let wdtype = if bf16 { DType::BF16 } else { DType::F32 };
    let dev = Device::Cpu;
    let (b, n, d, h, f, l) = (2usize, 1024usize, 1408usize, 16usize, 5632usize, 77usize);
    let rows = (b * n) as f64;
    let x = Tensor::randn(0f32, 1.0, (b, n, d), &dev)?;
    let lin = |o: usize, i: usize| -> candle_core::Result<Linear> {
        Ok(Linear::from_tensors(
            Tensor::randn(0f32, 0.02, (o, i), &dev)?.to_dtype(wdtype)?,
            Some(Tensor::randn(0f32, 0.02, o, &dev)?),
        ))
    };
    let (sq, f1, f2) = (lin(d, d)?, lin(f, d)?, lin(d, f)?);
    let f1_nobias = Linear::from_tensors(f1.weight().expect("stored").clone(), None);
    println!("weights {wdtype:?}");
    time(
        "linear 1408 -> 1408 (+ bias)",
        2.0 * rows * (d * d) as f64,
        || sq.forward(&x).unwrap(),
    );
    time(
        "linear 1408 -> 1408 + residual",
        2.0 * rows * (d * d) as f64,
        || sq.forward_residual(&x, &x).unwrap(),
    );
    let hid = f1.forward_approx_gelu(&x, false).unwrap();
    time(
        "linear 1408 -> 5632, no bias",
        2.0 * rows * (d * f) as f64,
        || f1_nobias.forward(&x).unwrap(),
    );
    time(
        "linear 1408 -> 5632 + bias",
        2.0 * rows * (d * f) as f64,
        || f1.forward(&x).unwrap(),
    );
    time(
        "linear 1408 -> 5632 + approx GELU",
        2.0 * rows * (d * f) as f64,
        || f1.forward_approx_gelu(&x, false).unwrap(),
    );
    time(
        "linear 5632 -> 1408 + residual",
        2.0 * rows * (d * f) as f64,
        || f2.forward_residual(&hid, &x).unwrap(),
    );
    let precision = if bf16 {
        AttentionPrecision::Bf16
    } else {
        AttentionPrecision::F32
    };
    let q = Tensor::randn(0f32, 1.0, (b, n, d), &dev)?;
    let scale = (88f64).powf(-0.5);
    time(
        "self-attention 16 x 1024 x 1024 x 88",
        4.0 * (b * h * n * n * 88) as f64,
        || multi_head_attention(&q, &q, &q, h, scale, None, precision, false).unwrap(),
    );
    let kv = Tensor::randn(0f32, 1.0, (b, l, d), &dev)?;
    time(
        "cross-attention 16 x 1024 x 77 x 88",
        4.0 * (b * h * n * l * 88) as f64,
        || multi_head_attention(&q, &kv, &kv, h, scale, None, precision, false).unwrap(),
    );
    let ones = Tensor::ones(d, DType::F32, &dev)?;
    let zeros = Tensor::zeros(d, DType::F32, &dev)?;
    time("layer norm (2048 x 1408)", 0.0, || {
        vq_nn::layer_norm(&x, &ones, &zeros, 1e-5, false).unwrap()
    });
    Ok(())
}
