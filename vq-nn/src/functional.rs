//! Training-safe functions with fused inference kernels: each uses this crate's fused CPU
//! kernel (or candle's fused op) when no gradient can flow, and the composite, differentiable
//! formula otherwise (candle's fused `softmax_last_dim` and `layer_norm` have no backward pass
//! and silently cut the graph: docs/candle-notes.md §4.5, §5.2).

use candle_core::{D, DType, Tensor};

use crate::Result;
use crate::host::no_grad;
use crate::ops;

/// `t` in `dtype` (a no-op when it already has it); bf16 → f32 on the CPU uses the crate's
/// vectorised, threaded widening (candle converts element by element through f64).
pub fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t.clone())
    } else if t.dtype() == DType::BF16
        && dtype == DType::F32
        && t.device().is_cpu()
        && no_grad(&[t])
    {
        ops::fused_bf16_to_f32(t)
    } else {
        Ok(t.to_dtype(dtype)?)
    }
}

/// Softmax over the last axis.
pub fn softmax_last_dim(x: &Tensor, train: bool) -> Result<Tensor> {
    if !train && no_grad(&[x]) && ops::supports(x) {
        return ops::fused_softmax_last_dim(x);
    }
    if !train && no_grad(&[x]) {
        return Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?);
    }
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// `z · sigmoid(1.702 z)`: diffusers' `ApproximateGELU`, CLIP's `quick_gelu`.
pub fn approx_gelu(z: &Tensor, train: bool) -> Result<Tensor> {
    if !train && no_grad(&[z]) && ops::supports(z) {
        return ops::fused_approx_gelu(z);
    }
    Ok((z * candle_nn::ops::sigmoid(&(z * 1.702)?)?)?)
}

/// Log-softmax over the last axis computed in f64 and rounded to f32 (diffusers' output head:
/// `log_softmax(logits.double()).float()`).
pub fn log_softmax_f64(x: &Tensor, train: bool) -> Result<Tensor> {
    if !train && no_grad(&[x]) && ops::supports(x) {
        return ops::fused_log_softmax_f64(x);
    }
    Ok(candle_nn::ops::log_softmax(&x.to_dtype(DType::F64)?, D::Minus1)?.to_dtype(DType::F32)?)
}

/// LayerNorm over the last axis, then `· alpha + beta` where `alpha`, `beta` are `(D,)` or
/// `(G, D)` (row group `g` of `G` equal groups of rows uses row `g`: a per-sample AdaLN).
pub fn layer_norm(
    x: &Tensor,
    alpha: &Tensor,
    beta: &Tensor,
    eps: f64,
    train: bool,
) -> Result<Tensor> {
    layer_norm_as(x, alpha, beta, eps, x.dtype(), train)
}

/// As [`layer_norm`], the result in `dtype`: on the fused CPU path an f32 input can be
/// normalised straight into bf16 (for a [`crate::Linear`] whose `input_dtype` is bf16).
pub fn layer_norm_as(
    x: &Tensor,
    alpha: &Tensor,
    beta: &Tensor,
    eps: f64,
    dtype: DType,
    train: bool,
) -> Result<Tensor> {
    let grad = train || !no_grad(&[x, alpha, beta]);
    if !grad && ops::supports(x) && matches!(dtype, DType::F32 | DType::BF16) {
        return ops::fused_layer_norm(x, alpha, beta, eps, dtype == DType::BF16);
    }
    if dtype != x.dtype() {
        return cast(
            &layer_norm_as(x, alpha, beta, eps, x.dtype(), train)?,
            dtype,
        );
    }
    if !grad && alpha.rank() == 1 && x.dtype() == alpha.dtype() && x.dtype() == beta.dtype() {
        // candle's fused kernel (CUDA/Metal, or half precision on the CPU).
        return Ok(candle_nn::ops::layer_norm(
            &x.contiguous()?,
            alpha,
            beta,
            eps as f32,
        )?);
    }
    let dtype = x.dtype();
    let internal = match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    };
    let xf = x.to_dtype(internal)?;
    let d = xf.dim(D::Minus1)? as f64;
    let centred = xf.broadcast_sub(&(xf.sum_keepdim(D::Minus1)? / d)?)?;
    let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / d)?;
    let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    let normed = cast(&normed, dtype)?;
    let (alpha, beta) = (cast(alpha, dtype)?, cast(beta, dtype)?);
    if alpha.rank() == 1 {
        return Ok(normed.broadcast_mul(&alpha)?.broadcast_add(&beta)?);
    }
    // (G, D) parameters over (B, N, D) with G = B: broadcast over the token axis.
    let (g, dim) = alpha.dims2()?;
    let alpha = alpha.reshape((g, 1, dim))?;
    let beta = beta.reshape((g, 1, dim))?;
    Ok(normed.broadcast_mul(&alpha)?.broadcast_add(&beta)?)
}

/// Dropout with probability `p`, active only in training mode.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Result<Tensor> {
    if train && p > 0.0 {
        Ok(candle_nn::ops::dropout(x, p as f32)?)
    } else {
        Ok(x.clone())
    }
}
