//! Micro-benchmarks of the fused convolution at the ITHQ VQ-GAN decoder's shapes (a 32 × 32
//! latent grid decoded to 256 × 256, channels 512/256/128/64 from the bottleneck out), each with
//! the decoder's `GroupNorm → SiLU` pre-op or its `upsample` pre-op, best of 5, with effective
//! GFLOP/s; the matmul of the same size (`(C_out, 9·C_in) × (9·C_in, H·W)`) for the ceiling.
//!
//! ```text
//! cargo bench -p vq-nn --bench convolutions
//! ```

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use vq_nn::{Conv2d, ConvInput, GroupNorm};

fn time(name: &str, flops: f64, mut f: impl FnMut() -> Tensor) -> f64 {
    let mut best = f64::INFINITY;
    drop(f());
    for _ in 0..5 {
        let s = Instant::now();
        drop(f());
        best = best.min(s.elapsed().as_secs_f64());
    }
    println!(
        "{name:52} {:8.2} ms {:7.0} GFLOP/s",
        best * 1e3,
        flops / best / 1e9
    );
    best
}

fn main() -> candle_core::Result<()> {
    vq_nn::tune_allocator();
    let dev = Device::Cpu;
    let mut total = (0.0, 0.0);
    // (c_in, c_out, kernel, input side, pre-op, how many the decoder runs)
    let shapes = [
        (512, 512, 3, 32, "gn", 10usize),
        (512, 512, 3, 32, "up", 1),
        (512, 256, 3, 64, "gn", 1),
        (256, 256, 3, 64, "gn", 5),
        (256, 256, 3, 64, "up", 1),
        (256, 128, 3, 128, "gn", 1),
        (128, 128, 3, 128, "gn", 5),
        (128, 128, 3, 128, "up", 1),
        (128, 64, 3, 256, "gn", 1),
        (64, 64, 3, 256, "gn", 5),
        (64, 3, 3, 256, "gn", 1),
        (128, 64, 1, 256, "none", 1),
    ];
    for (ci, co, k, side, pre, count) in shapes {
        let x = Tensor::randn(0f32, 1.0, (1, ci, side, side), &dev)?;
        let conv = Conv2d::from_tensors(
            Tensor::randn(0f32, 0.05, (co, ci, k, k), &dev)?,
            Some(Tensor::randn(0f32, 0.05, co, &dev)?),
            1,
            (k - 1) / 2,
        );
        let gn = GroupNorm::from_tensors(
            Tensor::ones(ci, DType::F32, &dev)?,
            Tensor::zeros(ci, DType::F32, &dev)?,
            32,
            1e-6,
        );
        let input = match pre {
            "gn" => ConvInput {
                norm: Some(&gn),
                silu: true,
                upsample: false,
            },
            "up" => ConvInput {
                upsample: true,
                ..ConvInput::default()
            },
            _ => ConvInput::default(),
        };
        let out_side = if pre == "up" { 2 * side } else { side };
        let pixels = out_side * out_side;
        let flops = 2.0 * (ci * co * k * k * pixels) as f64;
        let t = time(
            &format!("conv {k}x{k} {ci:3} -> {co:3} @ {out_side}² ({pre}) x{count}"),
            flops,
            || conv.forward_with(&x, input, None).unwrap(),
        );
        total.0 += t * count as f64;
        total.1 += flops * count as f64;
        let a = Tensor::randn(0f32, 1.0, (co, ci * k * k), &dev)?;
        let b = Tensor::randn(0f32, 1.0, (ci * k * k, pixels), &dev)?;
        time("  matmul of the same size (candle)", flops, || {
            a.matmul(&b).unwrap()
        });
    }
    println!(
        "decoder convolutions: {:.1} ms, {:.0} GFLOP/s",
        total.0 * 1e3,
        total.1 / total.0 / 1e9
    );
    Ok(())
}
