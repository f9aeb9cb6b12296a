//! [`Linear`]: `y = x Wᵀ + b` over the last axis, weights `(out, in)` as in PyTorch, kept in
//! their storage dtype.
//!
//! Inference on the CPU (f32 activations, no gradient) takes a fused path: the output buffer is
//! initialised with the bias (or with `residual + bias` for [`Linear::forward_residual`]) and
//! the GEMM accumulates into it, so neither the bias nor a residual connection costs a pass of
//! its own; [`Linear::forward_approx_gelu`] applies the activation in place. bf16 weights use
//! MKL's bf16 GEMM (f32 accumulation) in `mkl` builds on CPUs with AVX-512-BF16 or AMX, and are
//! widened to f32 per call elsewhere. [`Linear::to_int8`] gives a layer that holds its weight
//! in 8 bits only ([`Int8Weight`], a quarter of the f32 bytes): its fused path multiplies them
//! by activations quantised per token. Every other case (training, accelerators, f16) is
//! candle's matmul, with the stored weights (an 8-bit layer's dequantised per call).

use candle_core::{DType, Module, Tensor};
use candle_nn::{Init, VarBuilder};
use half::bf16;

use std::sync::Arc;

use crate::functional::cast;
use crate::gemm::{MatMut, MatRef, Threads, gemm_bf16, sgemm};
use crate::host::{no_grad, on_cpu, tensor, with_slice};
use crate::int8_weight::Int8Weight;
use crate::{Result, simd};

/// A fully connected layer.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

/// How a [`Linear`] holds its `(out, in)` weight.
#[derive(Debug, Clone)]
enum Weight {
    /// As loaded (any dtype, any device).
    Stored(Tensor),
    /// In 8 bits on the CPU ([`Linear::to_int8`]); the stored weight is gone.
    Int8(Arc<Int8Weight>),
}

/// What is added to `x Wᵀ` on the fused path.
enum Epilogue<'a> {
    Bias,
    BiasResidual(&'a Tensor),
    BiasApproxGelu,
}

impl Linear {
    /// Loads `weight` `(out, in)` and optionally `bias` `(out)`; fresh (`VarMap`) parameters
    /// get candle's Kaiming-normal weight and PyTorch's `U(±1/√in)` bias.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
        Self::new_with_init(
            vb,
            in_dim,
            out_dim,
            bias,
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )
    }

    /// As [`Linear::new`] with the initialisation of fresh parameters given.
    pub fn new_with_init(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        weight_init: Init,
        bias_init: Init,
    ) -> Result<Self> {
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", weight_init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", bias_init)?)
        } else {
            None
        };
        Ok(Self::from_tensors(weight, bias))
    }

    /// A layer from its tensors: `weight` `(out, in)`, `bias` `(out)`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: Weight::Stored(weight),
            bias,
        }
    }

    /// This layer with its weight quantised to 8 bits per output channel, holding only the
    /// [`Int8Weight`] (a quarter of the f32 bytes; [`Linear::weight`] is then `None`): on the
    /// fused CPU inference path (f32 activations, no gradient), `x Wᵀ` is the integer product
    /// with activations quantised per token at each call. Other inputs (f16, bf16, gradients,
    /// another device) multiply by the dequantised weight `s_c · q`, rebuilt per call. Errors
    /// when the weight is not on the CPU, tracks gradients, or holds NaN or ±∞; a layer
    /// already in 8 bits is returned as it is.
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// let w = Tensor::randn(0f32, 0.1, (64, 32), &Device::Cpu)?;
    /// let layer = vq_nn::Linear::from_tensors(w, None);
    /// let x = Tensor::randn(0f32, 1.0, (5, 32), &Device::Cpu)?;
    /// let exact = layer.forward(&x)?;
    /// let y = layer.to_int8()?.forward(&x)?;
    /// let err = (y - &exact)?.abs()?.max_all()?.to_scalar::<f32>()?;
    /// assert!(err < 0.05 * exact.abs()?.max_all()?.to_scalar::<f32>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_int8(&self) -> Result<Self> {
        let (out_dim, in_dim) = self.dims();
        let weight = match &self.weight {
            Weight::Stored(w) => w,
            Weight::Int8(_) => return Ok(self.clone()),
        };
        if !on_cpu(weight) || !no_grad(&[weight]) {
            return Err(crate::Error::Unsupported {
                op: "8-bit quantisation",
                device: format!("{:?}", weight.device().location()),
                reason: format!(
                    "the {out_dim}x{in_dim} weight must be on the CPU and not trainable"
                ),
            });
        }
        let w = cast(weight, DType::F32)?;
        let q = with_slice::<f32, _>(&w, |w| Int8Weight::quantize(w, out_dim, in_dim))??;
        Ok(Self {
            weight: Weight::Int8(Arc::new(q)),
            bias: self.bias.clone(),
        })
    }

    /// The 8-bit weight of a layer made by [`Linear::to_int8`].
    pub fn int8_weight(&self) -> Option<&Int8Weight> {
        match &self.weight {
            Weight::Int8(q) => Some(q),
            Weight::Stored(_) => None,
        }
    }

    /// The stored `(out, in)` weight; `None` for a layer made by [`Linear::to_int8`] (see
    /// [`Linear::int8_weight`]).
    pub fn weight(&self) -> Option<&Tensor> {
        match &self.weight {
            Weight::Stored(w) => Some(w),
            Weight::Int8(_) => None,
        }
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        match &self.weight {
            Weight::Stored(w) => {
                let d = w.dims();
                (d[0], d[1])
            }
            Weight::Int8(q) => q.dims(),
        }
    }

    fn fused_applies(&self, x: &Tensor) -> bool {
        let weight = match &self.weight {
            Weight::Stored(w) => {
                let input = match x.dtype() {
                    DType::F32 => true,
                    // bf16 activations only feed the native bf16 GEMM.
                    DType::BF16 => self.input_dtype() == DType::BF16,
                    _ => false,
                };
                input && matches!(w.dtype(), DType::F32 | DType::BF16) && no_grad(&[w])
            }
            Weight::Int8(_) => x.dtype() == DType::F32,
        };
        on_cpu(x) && weight && no_grad(&[x]) && self.bias.as_ref().is_none_or(|b| no_grad(&[b]))
    }

    /// The weight as a tensor of `dtype`: the stored one (converted when it differs, on its
    /// own device), or an 8-bit layer's `s_c · q` built on `device`.
    fn weight_as(&self, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
        match &self.weight {
            Weight::Stored(w) => cast(w, dtype),
            Weight::Int8(q) => {
                let w = Tensor::from_vec(q.dequantize(), q.dims(), device)?;
                Ok(cast(&w, dtype)?)
            }
        }
    }

    /// The activation dtype this layer consumes without a conversion on the fused CPU path:
    /// bf16 when its weight is bf16 and the backend multiplies bf16 natively, f32 otherwise.
    /// A layer feeding it (a norm, an activation) can produce that dtype directly.
    pub fn input_dtype(&self) -> DType {
        match &self.weight {
            Weight::Stored(w)
                if w.dtype() == DType::BF16 && on_cpu(w) && crate::gemm::native_bf16() =>
            {
                DType::BF16
            }
            _ => DType::F32,
        }
    }

    /// `x Wᵀ + b + residual` (`residual` of the output's shape).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if self.fused_applies(x)
            && residual.dtype() == DType::F32
            && on_cpu(residual)
            && no_grad(&[residual])
        {
            return self.fused(x, Epilogue::BiasResidual(residual), DType::F32);
        }
        Ok((self.forward(x)? + residual)?)
    }

    /// `approx_gelu(x Wᵀ + b)` with `approx_gelu(z) = z · sigmoid(1.702 z)` (diffusers'
    /// `ApproximateGELU`, CLIP's `quick_gelu`), in f32.
    pub fn forward_approx_gelu(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_approx_gelu_as(x, DType::F32, train)
    }

    /// As [`Linear::forward_approx_gelu`], produced in `dtype` (f32 or bf16) on the fused path
    /// — e.g. the [`Linear::input_dtype`] of the layer that consumes it.
    pub fn forward_approx_gelu_as(&self, x: &Tensor, dtype: DType, train: bool) -> Result<Tensor> {
        if !train && self.fused_applies(x) && matches!(dtype, DType::F32 | DType::BF16) {
            return self.fused(x, Epilogue::BiasApproxGelu, dtype);
        }
        crate::functional::approx_gelu(&self.forward(x)?, train)
    }

    fn fused(&self, x: &Tensor, epilogue: Epilogue, out_dtype: DType) -> Result<Tensor> {
        let (out_dim, in_dim) = self.dims();
        let dims = x.dims().to_vec();
        let last = *dims.last().unwrap_or(&0);
        if last != in_dim {
            return Err(candle_core::Error::ShapeMismatchBinaryOp {
                lhs: x.shape().clone(),
                rhs: (out_dim, in_dim).into(),
                op: "linear",
            }
            .into());
        }
        let rows = x.elem_count() / in_dim.max(1);
        let residual = match &epilogue {
            Epilogue::BiasResidual(r) => {
                if r.elem_count() != rows * out_dim {
                    return Err(candle_core::Error::ShapeMismatchBinaryOp {
                        lhs: r.shape().clone(),
                        rhs: (out_dim, in_dim).into(),
                        op: "linear residual",
                    }
                    .into());
                }
                Some(*r)
            }
            _ => None,
        };
        let bias = match &self.bias {
            Some(b) => Some(cast(b, DType::F32)?),
            None => None,
        };
        // SAFETY: written completely below before it is read: by the residual and bias rows,
        // or (neither) by the GEMM, which overwrites when it does not accumulate.
        let mut out: Vec<f32> = unsafe { crate::host::uninit_vec(rows * out_dim) };
        let accumulate = residual.is_some() || bias.is_some();
        match (residual, &bias) {
            (Some(r), Some(b)) => with_slice::<f32, _>(r, |r| {
                with_slice::<f32, _>(b, |b| {
                    for (o, r) in out.chunks_exact_mut(out_dim).zip(r.chunks_exact(out_dim)) {
                        for ((o, &r), &b) in o.iter_mut().zip(r).zip(b) {
                            *o = r + b;
                        }
                    }
                })
            })??,
            (Some(r), None) => with_slice::<f32, _>(r, |r| out.copy_from_slice(r))?,
            (None, Some(b)) => with_slice::<f32, _>(b, |b| {
                for row in out.chunks_exact_mut(out_dim) {
                    row.copy_from_slice(b);
                }
            })?,
            (None, None) => {}
        }
        let c = MatMut::new(&mut out, rows, out_dim, out_dim);
        match &self.weight {
            Weight::Int8(q) => {
                with_slice::<f32, _>(x, |xs| q.matmul(c, xs, rows, accumulate, Threads::All))?;
            }
            Weight::Stored(wb) if self.input_dtype() == DType::BF16 => {
                let gemm = |xb: &[bf16]| {
                    with_slice::<bf16, _>(wb, |w| {
                        gemm_bf16(
                            c,
                            MatRef::row_major(xb, rows, in_dim, in_dim),
                            MatRef::row_major(w, out_dim, in_dim, in_dim).t(),
                            accumulate,
                            Threads::All,
                        )
                    })
                };
                if x.dtype() == DType::BF16 {
                    with_slice::<bf16, _>(x, gemm)??;
                } else {
                    with_slice::<f32, _>(x, |xs| {
                        // SAFETY: the conversion writes every element.
                        let mut xb: Vec<bf16> = unsafe { crate::host::uninit_vec(xs.len()) };
                        simd::f32_to_bf16(xs, &mut xb);
                        gemm(&xb)
                    })??;
                }
            }
            Weight::Stored(w) => {
                let w = cast(w, DType::F32)?;
                let x = cast(x, DType::F32)?;
                with_slice::<f32, _>(&x, |xs| {
                    with_slice::<f32, _>(&w, |w| {
                        sgemm(
                            c,
                            MatRef::row_major(xs, rows, in_dim, in_dim),
                            MatRef::row_major(w, out_dim, in_dim, in_dim).t(),
                            accumulate,
                            Threads::All,
                        )
                    })
                })??;
            }
        }
        let mut shape = dims;
        *shape.last_mut().expect("rank ≥ 1") = out_dim;
        if let Epilogue::BiasApproxGelu = epilogue {
            if out_dtype == DType::BF16 {
                // SAFETY: the activation writes every element.
                let mut out16: Vec<bf16> = unsafe { crate::host::uninit_vec(out.len()) };
                simd::par_zip_chunks(&out, &mut out16, 1 << 14, simd::approx_gelu_to_bf16);
                return tensor(out16, &shape);
            }
            simd::par_chunks_mut(&mut out, 1 << 14, simd::approx_gelu_in_place);
        }
        tensor(out, &shape)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.fused_applies(x) {
            return self
                .fused(x, Epilogue::Bias, DType::F32)
                .map_err(crate::Error::into_candle);
        }
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let w = self
            .weight_as(x.dtype(), x.device())
            .map_err(crate::Error::into_candle)?;
        let out_dim = w.dim(0)?;
        let y = x.reshape((rows, in_dim))?.matmul(&w.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(&cast(b, x.dtype()).map_err(crate::Error::into_candle)?)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = out_dim;
        y.reshape(out_dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn reference(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        x.to_dtype(DType::F64)
            .unwrap()
            .broadcast_matmul(&w.to_dtype(DType::F64).unwrap().t().unwrap())
            .unwrap()
            .broadcast_add(&b.to_dtype(DType::F64).unwrap())
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn fused_paths_match_the_composite_formula() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 37, 48), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.2, (29, 48), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.2, 29, &dev).unwrap();
        let r = Tensor::randn(0f32, 1.0, (2, 37, 29), &dev).unwrap();
        let lin = Linear::from_tensors(w.clone(), Some(b.clone()));
        let want = reference(&x, &w, &b);
        assert!(max_diff(&lin.forward(&x).unwrap(), &want) < 1e-5);
        let with_r = lin.forward_residual(&x, &r).unwrap();
        assert!(
            max_diff(
                &with_r,
                &(want.clone() + r.to_dtype(DType::F64).unwrap()).unwrap()
            ) < 1e-5
        );
        let g = lin.forward_approx_gelu(&x, false).unwrap();
        let want_g = (&want * candle_nn::ops::sigmoid(&(&want * 1.702).unwrap()).unwrap()).unwrap();
        assert!(max_diff(&g, &want_g) < 1e-5);
        // bf16 weights: the product of the rounded weights (and, with MKL, rounded inputs).
        let lin16 = Linear::from_tensors(w.to_dtype(DType::BF16).unwrap(), Some(b.clone()));
        let want16 = reference(&x, &w.to_dtype(DType::BF16).unwrap(), &b);
        assert!(max_diff(&lin16.forward(&x).unwrap(), &want16) < 2e-2);
        // Non-contiguous input.
        let xt = Tensor::randn(0f32, 1.0, (48, 37), &dev)
            .unwrap()
            .t()
            .unwrap();
        let lin2 = Linear::from_tensors(w.clone(), None);
        let want2 = xt
            .to_dtype(DType::F64)
            .unwrap()
            .matmul(&w.to_dtype(DType::F64).unwrap().t().unwrap())
            .unwrap();
        assert!(max_diff(&lin2.forward(&xt).unwrap(), &want2) < 1e-5);
    }

    #[test]
    fn int8_layers_compute_the_quantised_product_with_every_epilogue() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 19, 40), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.2, (23, 40), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.2, 23, &dev).unwrap();
        let r = Tensor::randn(0f32, 1.0, (2, 19, 23), &dev).unwrap();
        for weight in [w.clone(), w.to_dtype(DType::BF16).unwrap()] {
            let lin = Linear::from_tensors(weight, Some(b.clone()));
            let q = lin.to_int8().unwrap();
            assert_eq!(q.int8_weight().unwrap().dims(), (23, 40));
            assert_eq!(q.input_dtype(), DType::F32);
            // The product of the dequantised weight and the per-row quantised input.
            let wd =
                Tensor::from_vec(q.int8_weight().unwrap().dequantize(), (23, 40), &dev).unwrap();
            let want = reference(&x, &wd, &b);
            let step = max_diff(&x, &x.zeros_like().unwrap()) / 127.0;
            // Each input rounds by at most half a step: |Δy| ≤ ½ step · Σ|w|.
            let bound = 0.5 * step * 40.0 * 0.2 * 4.0;
            assert!(max_diff(&q.forward(&x).unwrap(), &want) < bound);
            let with_r = (want.clone() + r.to_dtype(DType::F64).unwrap()).unwrap();
            assert!(max_diff(&q.forward_residual(&x, &r).unwrap(), &with_r) < bound);
            let g = q.forward_approx_gelu(&x, false).unwrap();
            let exact_g = lin.forward_approx_gelu(&x, false).unwrap();
            assert!(max_diff(&g, &exact_g) < 2.0 * bound);
            // Only the 8-bit weight is held; inputs off the fused path (f64, or tracking
            // gradients) multiply by the dequantised weight, unquantised.
            assert!(q.weight().is_none());
            assert_eq!(q.dims(), (23, 40));
            let x64 = x.to_dtype(DType::F64).unwrap();
            assert!(max_diff(&q.forward(&x64).unwrap(), &want) < 1e-9);
            let xv = Var::from_tensor(&x).unwrap();
            let y = q.forward(xv.as_tensor()).unwrap();
            assert!(max_diff(&y, &want) < 1e-4);
            assert!(y.sum_all().unwrap().backward().is_ok());
            // Quantising again keeps the same integers.
            let again = q.to_int8().unwrap();
            assert_eq!(
                again.int8_weight().unwrap().dequantize(),
                q.int8_weight().unwrap().dequantize()
            );
        }
        // Trainable weights are refused, by name of the cause.
        let v = Var::randn(0f32, 0.2, (5, 4), &dev).unwrap();
        let err = Linear::from_tensors(v.as_tensor().clone(), None)
            .to_int8()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("5x4") && err.contains("not trainable"),
            "{err}"
        );
    }

    #[test]
    fn gradients_reach_the_parameters() {
        let dev = Device::Cpu;
        let w = Var::randn(0f32, 0.2, (5, 4), &dev).unwrap();
        let b = Var::randn(0f32, 0.2, 5, &dev).unwrap();
        let lin = Linear::from_tensors(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let x = Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap();
        let r = Tensor::randn(0f32, 1.0, (3, 5), &dev).unwrap();
        let loss = (lin
            .forward_residual(&x, &r)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            + lin
                .forward_approx_gelu(&x, true)
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        for v in [&w, &b] {
            assert!(grads.get(v).is_some());
        }
    }
}
