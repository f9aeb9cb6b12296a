//! Fused f32 CPU kernels for the inference path (no backward; callers gate them with
//! `track_op`): LayerNorm with per-group scale/shift (two-pass mean/variance), softmax over
//! the last axis, and the `ApproximateGELU` activation `z · sigmoid(1.702 z)`.
//!
//! They exist because candle's CPU elementwise kernels call scalar `expf` per element: the
//! softmax of the 32×1024×1024 self-attention scores of an ITHQ layer at batch 2 is 33.5 M
//! exponentials. Here `exp` is a Cephes-style polynomial (≈1 ulp on the clamped range
//! `[-87.3, 88.3]`) written as straight-line float code that LLVM vectorises inside
//! `#[target_feature]` clones (AVX-512 or AVX2+FMA, picked at run time), and rows are split
//! over `candle_core::utils::get_num_threads()` scoped threads.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Shape, Tensor};

use crate::Result;

/// Whether the fused kernels handle `x` (f32 on the CPU).
pub(crate) fn supports(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && matches!(x.device(), Device::Cpu)
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer in the low bits.

/// `e^x` for `x` clamped to `[-87.3, 88.3]` (relative error ≈ 1e-7).
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((bits + 127) << 23) as u32);
    er * scale
}

const LANES: usize = 16;

#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

#[inline(always)]
fn softmax_row_generic(src: &[f32], dst: &mut [f32]) {
    let m = max(src);
    if m == f32::NEG_INFINITY {
        // All -inf: like PyTorch, a NaN row.
        dst.fill(f32::NAN);
        return;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = exp(s - m);
    }
    let inv = 1.0 / sum(dst);
    for d in dst.iter_mut() {
        *d *= inv;
    }
}

#[inline(always)]
fn layer_norm_row_generic(src: &[f32], dst: &mut [f32], alpha: &[f32], beta: &[f32], eps: f32) {
    let n = src.len() as f32;
    let mean = sum(src) / n;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s - mean;
    }
    let mut acc = [0f32; LANES];
    let chunks = dst.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i] * c[i];
        }
    }
    let var = (acc.iter().sum::<f32>() + rest) / n;
    let inv_std = 1.0 / (var + eps).sqrt();
    for ((d, &a), &b) in dst.iter_mut().zip(alpha).zip(beta) {
        *d = *d * inv_std * a + b;
    }
}

#[inline(always)]
fn approx_gelu_generic(src: &[f32], dst: &mut [f32]) {
    for (d, &z) in dst.iter_mut().zip(src) {
        *d = z / (1.0 + exp(-1.702 * z));
    }
}

macro_rules! dispatch {
    ($name:ident, $generic:ident, ($($arg:ident : $ty:ty),*)) => {
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the enabled features (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

dispatch!(softmax_rows, softmax_rows_generic, (src: &[f32], dst: &mut [f32], cols: usize));
dispatch!(approx_gelu_slice, approx_gelu_generic, (src: &[f32], dst: &mut [f32]));
dispatch!(
    layer_norm_rows,
    layer_norm_rows_generic,
    (src: &[f32], dst: &mut [f32], cols: usize, first_row: usize, rows_per_group: usize, alpha: &[f32], beta: &[f32], eps: f32)
);

#[inline(always)]
fn softmax_rows_generic(src: &[f32], dst: &mut [f32], cols: usize) {
    for (s, d) in src.chunks_exact(cols).zip(dst.chunks_exact_mut(cols)) {
        softmax_row_generic(s, d);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn layer_norm_rows_generic(
    src: &[f32],
    dst: &mut [f32],
    cols: usize,
    first_row: usize,
    rows_per_group: usize,
    alpha: &[f32],
    beta: &[f32],
    eps: f32,
) {
    for (i, (s, d)) in src
        .chunks_exact(cols)
        .zip(dst.chunks_exact_mut(cols))
        .enumerate()
    {
        let g = (first_row + i) / rows_per_group;
        let (a, b) = (
            &alpha[g * cols..(g + 1) * cols],
            &beta[g * cols..(g + 1) * cols],
        );
        layer_norm_row_generic(s, d, a, b, eps);
    }
}

/// Runs `f(first_row, src_rows, dst_rows)` over row blocks on the candle thread count.
fn par_rows(
    src: &[f32],
    dst: &mut [f32],
    cols: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) {
    let rows = src.len() / cols.max(1);
    let threads = candle_core::utils::get_num_threads().clamp(1, rows.max(1));
    // Below ~64k elements a thread costs more than it saves.
    if threads == 1 || src.len() < 1 << 16 {
        f(0, src, dst);
        return;
    }
    let per = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut chunks = src
            .chunks(per * cols)
            .zip(dst.chunks_mut(per * cols))
            .enumerate();
        let first = chunks.next();
        for (i, (s, d)) in chunks {
            let f = &f;
            handles.push(scope.spawn(move || f(i * per, s, d)));
        }
        if let Some((_, (s, d))) = first {
            f(0, s, d);
        }
        for h in handles {
            h.join().expect("kernel thread panicked");
        }
    });
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "vq-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s, l, "softmax input")?;
        let cols = l.dims().last().copied().unwrap_or(1);
        let mut dst = vec![0f32; src.len()];
        par_rows(src, &mut dst, cols, |_, s, d| softmax_rows(s, d, cols));
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// Softmax over the last axis of an f32 CPU tensor (made contiguous if needed).
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&Softmax)?)
}

struct ApproxGelu;

impl CustomOp1 for ApproxGelu {
    fn name(&self) -> &'static str {
        "vq-approximate-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s, l, "activation input")?;
        let mut dst = vec![0f32; src.len()];
        // Treat the buffer as rows of 4096 for the thread split.
        let cols = 4096.min(src.len().max(1));
        if src.len() % cols == 0 {
            par_rows(src, &mut dst, cols, |_, s, d| approx_gelu_slice(s, d));
        } else {
            approx_gelu_slice(src, &mut dst);
        }
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// `z · sigmoid(1.702 z)` of an f32 CPU tensor.
pub(crate) fn approx_gelu(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&ApproxGelu)?)
}

struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "vq-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s1, l1, "layer-norm input")?;
        let alpha = contiguous_f32(s2, l2, "layer-norm scale")?;
        let beta = contiguous_f32(s3, l3, "layer-norm shift")?;
        let cols = l1.dims().last().copied().unwrap_or(1);
        let rows = src.len() / cols.max(1);
        let groups = alpha.len() / cols.max(1);
        if groups == 0 || alpha.len() != beta.len() || rows % groups != 0 {
            candle_core::bail!(
                "layer-norm: scale/shift {:?} do not fit input {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let rows_per_group = rows / groups;
        let eps = self.eps;
        let mut dst = vec![0f32; src.len()];
        par_rows(src, &mut dst, cols, |first, s, d| {
            layer_norm_rows(s, d, cols, first, rows_per_group, alpha, beta, eps)
        });
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

/// LayerNorm of f32 `x` over its last axis, then `· alpha + beta` with `alpha`, `beta` of
/// shape `(D,)` or `(G, D)` (G equal groups of rows, e.g. one per sample).
pub(crate) fn layer_norm(x: &Tensor, alpha: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let alpha = alpha.to_dtype(DType::F32)?.contiguous()?;
    let beta = beta.to_dtype(DType::F32)?.contiguous()?;
    Ok(x.contiguous()?
        .apply_op3_no_bwd(&alpha, &beta, &LayerNorm { eps: eps as f32 })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "relative error {worst}");
    }

    #[test]
    fn kernels_match_composite_ops() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let x = (Tensor::randn(0f32, 3.0, (3, 70, 130), &dev)? + 5.0)?;
        let a = softmax_last_dim(&x)?;
        let b = candle_nn::ops::softmax(&x, candle_core::D::Minus1)?;
        let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "softmax {d}");

        let g = approx_gelu(&x)?;
        let want = (&x * candle_nn::ops::sigmoid(&(&x * 1.702)?)?)?;
        let d = (g - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "gelu {d}");

        let alpha = Tensor::randn(0f32, 1.0, (3, 130), &dev)?;
        let beta = Tensor::randn(0f32, 1.0, (3, 130), &dev)?;
        let got = layer_norm(&x, &alpha, &beta, 1e-5)?;
        let want = candle_nn::ops::layer_norm_slow(
            &x,
            &Tensor::ones(130, DType::F32, &dev)?,
            &Tensor::zeros(130, DType::F32, &dev)?,
            1e-5,
        )?
        .broadcast_mul(&alpha.unsqueeze(1)?)?
        .broadcast_add(&beta.unsqueeze(1)?)?;
        let d = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "layer norm {d}");

        let big = (Tensor::randn(0f32, 4.0, (64, 4096), &dev)? - 30.0)?;
        let got = log_softmax_f64(&big)?;
        let want = candle_nn::ops::log_softmax(&big.to_dtype(DType::F64)?, candle_core::D::Minus1)?
            .to_dtype(DType::F32)?;
        let d = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "log-softmax f64");

        let h = big.to_dtype(DType::BF16)?;
        let d = (bf16_to_f32(&h)? - h.to_dtype(DType::F32)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "bf16 -> f32");
        Ok(())
    }
}

fn log_softmax_f64_rows(src: &[f32], dst: &mut [f32], cols: usize) {
    for (s, d) in src.chunks_exact(cols).zip(dst.chunks_exact_mut(cols)) {
        let m = max(s) as f64;
        if m == f64::NEG_INFINITY {
            d.fill(f32::NAN);
            continue;
        }
        let total: f64 = s.iter().map(|&v| (v as f64 - m).exp()).sum();
        let log_total = total.ln();
        for (o, &v) in d.iter_mut().zip(s) {
            *o = ((v as f64 - m) - log_total) as f32;
        }
    }
}

struct LogSoftmaxF64;

impl CustomOp1 for LogSoftmaxF64 {
    fn name(&self) -> &'static str {
        "vq-log-softmax-f64"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s, l, "log-softmax input")?;
        let cols = l.dims().last().copied().unwrap_or(1);
        let mut dst = vec![0f32; src.len()];
        par_rows(src, &mut dst, cols, |_, s, d| {
            log_softmax_f64_rows(s, d, cols)
        });
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// Log-softmax over the last axis of f32 `x`, computed in f64 and rounded to f32 (diffusers'
/// `log_softmax(logits.double()).float()`), in one pass per row.
pub(crate) fn log_softmax_f64(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&LogSoftmaxF64)?)
}

struct Bf16ToF32;

impl CustomOp1 for Bf16ToF32 {
    fn name(&self) -> &'static str {
        "vq-bf16-to-f32"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = match l.contiguous_offsets() {
            Some(o) => o,
            None => candle_core::bail!("bf16 input must be contiguous"),
        };
        let CpuStorage::BF16(v) = s else {
            candle_core::bail!("expected bf16 storage")
        };
        let v = &v[a..b];
        // SAFETY: `half::bf16` is `repr(transparent)` over `u16`.
        let bits: &[u16] = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u16>(), v.len()) };
        let mut dst = vec![0f32; bits.len()];
        let threads = candle_core::utils::get_num_threads().max(1);
        let per = bits.len().div_ceil(threads).max(1 << 16);
        std::thread::scope(|scope| {
            for (s, d) in bits.chunks(per).zip(dst.chunks_mut(per)) {
                scope.spawn(move || bf16_bits_to_f32(s, d));
            }
        });
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

#[inline(always)]
fn bf16_bits_to_f32_generic(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s as u32) << 16);
    }
}

dispatch!(bf16_bits_to_f32, bf16_bits_to_f32_generic, (src: &[u16], dst: &mut [f32]));

/// bf16 → f32 on the CPU (exact: a 16-bit shift), vectorised and threaded; candle converts
/// element by element through `f64`.
pub(crate) fn bf16_to_f32(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&Bf16ToF32)?)
}
