//! Small building blocks shared by the modules: a `Linear` that computes in the activation
//! dtype whatever the storage dtype of its weights, and training-safe LayerNorm / softmax /
//! dropout helpers (candle's fused ops have no backward, so they are used only when nothing
//! upstream tracks gradients; docs/candle-notes.md §4.5, §5.2).

use candle_core::{D, DType, Module, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::Result;
use crate::kernels;

/// Casts `t` to `dtype` (a no-op when it already has it).
pub(crate) fn cast(t: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t.clone())
    } else if t.dtype() == DType::BF16
        && dtype == DType::F32
        && matches!(t.device(), candle_core::Device::Cpu)
        && !t.track_op()
    {
        kernels::bf16_to_f32(t).map_err(|e| match e {
            crate::Error::Candle(e) => e,
            other => candle_core::Error::Msg(other.to_string()),
        })
    } else {
        t.to_dtype(dtype)
    }
}

/// `y = x Wᵀ + b` over the last axis, weights `(out, in)` as in PyTorch. Weights stay in their
/// storage dtype and are converted to the input's dtype per call (bf16 storage on CPU, where
/// candle has no bf16 matmul).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` `(out, in)` and optionally `bias` `(out)` from `vb` (PyTorch's
    /// initialisation hints when `vb` creates variables).
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1.0 / (in_dim as f64).sqrt();
            Some(vb.get_with_hints(
                out_dim,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// The `(out, in)` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let w = cast(&self.weight, x.dtype())?;
        let out_dim = w.dim(0)?;
        let y = x.reshape((rows, in_dim))?.matmul(&w.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(&cast(b, x.dtype())?)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = out_dim;
        y.reshape(out_dims)
    }
}

/// LayerNorm over the last axis, then `· alpha + beta` where `alpha`, `beta` are `(D,)` or
/// `(G, D)` (row group `g` of `G` equal groups of rows uses row `g`: per-sample AdaLN).
/// Uses the fused inference kernel unless a gradient could flow (training, or variables).
pub(crate) fn layer_norm(
    x: &Tensor,
    alpha: &Tensor,
    beta: &Tensor,
    eps: f64,
    train: bool,
) -> Result<Tensor> {
    let grad = train || x.track_op() || alpha.track_op() || beta.track_op();
    if !grad && kernels::supports(x) {
        return kernels::layer_norm(x, alpha, beta, eps);
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

/// Softmax over the last axis; fused kernel on the inference path.
pub(crate) fn softmax_last_dim(x: &Tensor, train: bool) -> Result<Tensor> {
    if !train && !x.track_op() && kernels::supports(x) {
        return kernels::softmax_last_dim(x);
    }
    if !train && !x.track_op() {
        return Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?);
    }
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// Dropout with probability `p`, active only in training mode.
pub(crate) fn dropout(x: &Tensor, p: f64, train: bool) -> Result<Tensor> {
    if train && p > 0.0 {
        Ok(candle_nn::ops::dropout(x, p as f32)?)
    } else {
        Ok(x.clone())
    }
}

/// `torch.nn.LayerNorm` over the last axis, with or without affine parameters.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    dim: usize,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight`/`bias` `(D,)` when `affine`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64, affine: bool) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(vb.get_with_hints(dim, "weight", Init::Const(1.0))?),
                Some(vb.get_with_hints(dim, "bias", Init::Const(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            weight,
            bias,
            dim,
            eps,
        })
    }

    /// Normalises `x` (training mode picks the differentiable composite formula).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dtype = x.dtype();
        let w = match &self.weight {
            Some(w) => cast(w, dtype)?,
            None => Tensor::ones(self.dim, dtype, x.device())?,
        };
        let b = match &self.bias {
            Some(b) => cast(b, dtype)?,
            None => Tensor::zeros(self.dim, dtype, x.device())?,
        };
        layer_norm(x, &w, &b, self.eps, train)
    }
}
