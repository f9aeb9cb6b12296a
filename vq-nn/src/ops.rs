//! Fused f32 CPU kernels as candle ops for the inference path (no backward: callers gate them
//! on `track_op`, see [`crate::no_grad`]): LayerNorm with per-group scale/shift (two-pass
//! mean/variance), softmax over the last axis, the `ApproximateGELU` activation
//! `z · sigmoid(1.702 z)`, the f64 log-softmax of diffusers' output head, and bf16 → f32.
//!
//! They exist because candle's CPU elementwise kernels call scalar `expf` per element: the
//! softmax of the 32×1024×1024 self-attention scores of an ITHQ layer at batch 2 is 33.5 M
//! exponentials. The row kernels are in [`crate::simd`]; rows are split over
//! `candle_core::utils::get_num_threads()` threads.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Shape, Tensor};

use crate::Result;
use crate::simd::{
    approx_gelu_slice, bf16_bits_to_f32, layer_norm_rows, log_softmax_f64_rows, par_rows,
    softmax_rows,
};

/// Whether the fused kernels handle `x` (f32 on the CPU).
pub(crate) fn supports(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && matches!(x.device(), Device::Cpu)
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
        // SAFETY: the kernel writes every element.
        let mut dst: Vec<f32> = unsafe { crate::host::uninit_vec(src.len()) };
        par_rows(src, &mut dst, cols, |_, s, d| softmax_rows(s, d, cols));
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// Softmax over the last axis of an f32 CPU tensor (made contiguous if needed).
pub(crate) fn fused_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&Softmax)?)
}

struct ApproxGelu;

impl CustomOp1 for ApproxGelu {
    fn name(&self) -> &'static str {
        "vq-approximate-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s, l, "activation input")?;
        // SAFETY: the kernel writes every element.
        let mut dst: Vec<f32> = unsafe { crate::host::uninit_vec(src.len()) };
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
pub(crate) fn fused_approx_gelu(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&ApproxGelu)?)
}

struct LayerNorm {
    eps: f32,
    bf16_out: bool,
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
        if self.bf16_out {
            // SAFETY: every row is written below.
            let mut dst: Vec<half::bf16> = unsafe { crate::host::uninit_vec(src.len()) };
            crate::simd::par_zip_rows(src, &mut dst, cols, |first, s, d| {
                let mut row = vec![0f32; cols];
                for (i, (s, d)) in s
                    .chunks_exact(cols)
                    .zip(d.chunks_exact_mut(cols))
                    .enumerate()
                {
                    layer_norm_rows(
                        s,
                        &mut row,
                        cols,
                        first + i,
                        rows_per_group,
                        alpha,
                        beta,
                        eps,
                    );
                    crate::simd::f32_to_bf16(&row, d);
                }
            });
            return Ok((CpuStorage::BF16(dst), l1.shape().clone()));
        }
        // SAFETY: the kernel writes every element.
        let mut dst: Vec<f32> = unsafe { crate::host::uninit_vec(src.len()) };
        par_rows(src, &mut dst, cols, |first, s, d| {
            layer_norm_rows(s, d, cols, first, rows_per_group, alpha, beta, eps)
        });
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

/// LayerNorm of f32 `x` over its last axis, then `· alpha + beta` with `alpha`, `beta` of
/// shape `(D,)` or `(G, D)` (G equal groups of rows, e.g. one per sample).
pub(crate) fn fused_layer_norm(
    x: &Tensor,
    alpha: &Tensor,
    beta: &Tensor,
    eps: f64,
    bf16_out: bool,
) -> Result<Tensor> {
    let alpha = alpha.to_dtype(DType::F32)?.contiguous()?;
    let beta = beta.to_dtype(DType::F32)?.contiguous()?;
    Ok(x.contiguous()?.apply_op3_no_bwd(
        &alpha,
        &beta,
        &LayerNorm {
            eps: eps as f32,
            bf16_out,
        },
    )?)
}

struct LogSoftmaxF64;

impl CustomOp1 for LogSoftmaxF64 {
    fn name(&self) -> &'static str {
        "vq-log-softmax-f64"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s, l, "log-softmax input")?;
        let cols = l.dims().last().copied().unwrap_or(1);
        // SAFETY: the kernel writes every element.
        let mut dst: Vec<f32> = unsafe { crate::host::uninit_vec(src.len()) };
        par_rows(src, &mut dst, cols, |_, s, d| {
            log_softmax_f64_rows(s, d, cols)
        });
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// Log-softmax over the last axis of f32 `x`, computed in f64 and rounded to f32 (diffusers'
/// `log_softmax(logits.double()).float()`), in one pass per row.
pub(crate) fn fused_log_softmax_f64(x: &Tensor) -> Result<Tensor> {
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
        // SAFETY: the conversion writes every element.
        let mut dst: Vec<f32> = unsafe { crate::host::uninit_vec(bits.len()) };
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

/// bf16 → f32 on the CPU (exact: a 16-bit shift), vectorised and threaded; candle converts
/// element by element through `f64`.
pub(crate) fn fused_bf16_to_f32(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&Bf16ToF32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_composite_ops() -> Result<()> {
        let dev = Device::Cpu;
        let x = (Tensor::randn(0f32, 3.0, (3, 70, 130), &dev)? + 5.0)?;
        let a = fused_softmax_last_dim(&x)?;
        let b = candle_nn::ops::softmax(&x, candle_core::D::Minus1)?;
        let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "softmax {d}");

        let g = fused_approx_gelu(&x)?;
        let want = (&x * candle_nn::ops::sigmoid(&(&x * 1.702)?)?)?;
        let d = (g - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "gelu {d}");

        let alpha = Tensor::randn(0f32, 1.0, (3, 130), &dev)?;
        let beta = Tensor::randn(0f32, 1.0, (3, 130), &dev)?;
        let got = fused_layer_norm(&x, &alpha, &beta, 1e-5, false)?;
        let got16 = fused_layer_norm(&x, &alpha, &beta, 1e-5, true)?;
        assert_eq!(got16.dtype(), DType::BF16);
        let d16 = (got16.to_dtype(DType::F32)?
            - got.to_dtype(DType::BF16)?.to_dtype(DType::F32)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
        assert_eq!(d16, 0.0, "bf16 output is the rounded f32 output");
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
        let got = fused_log_softmax_f64(&big)?;
        let want = candle_nn::ops::log_softmax(&big.to_dtype(DType::F64)?, candle_core::D::Minus1)?
            .to_dtype(DType::F32)?;
        let d = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "log-softmax f64");

        let h = big.to_dtype(DType::BF16)?;
        let d = (fused_bf16_to_f32(&h)? - h.to_dtype(DType::F32)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "bf16 -> f32");
        Ok(())
    }
}
