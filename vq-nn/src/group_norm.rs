//! [`GroupNorm`]: `torch.nn.GroupNorm` (Wu & He 2018) over `(B, C, ...)` tensors — statistics
//! per sample and group of `C/G` channels, then a per-channel affine map — optionally followed by
//! SiLU, the pre-activation of every VQ-GAN resnet block.
//!
//! Inference on the CPU runs a fused kernel (two-pass mean and variance per group, then
//! normalise, affine and SiLU in one pass); it also hands its statistics to
//! [`crate::Conv2d::forward_with`], which applies the normalisation while it builds the
//! convolution's padded input, so that a `GroupNorm → SiLU → conv` chain reads its input once.
//! Training and accelerators use candle's composite ops.

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use crate::functional::cast;
use crate::host::{no_grad, on_cpu, tensor, uninit_vec, with_slice};
use crate::{Error, Result, simd};

/// Group normalisation.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

/// The per-(sample, channel) affine map a group normalisation applies:
/// `y = (x − mean) · inv_std · w + b`.
pub(crate) struct NormStats {
    /// Per (sample, group): mean.
    pub mean: Vec<f32>,
    /// Per (sample, group): `1 / √(var + eps)`.
    pub inv_std: Vec<f32>,
    /// Per channel: weight.
    pub weight: Vec<f32>,
    /// Per channel: bias.
    pub bias: Vec<f32>,
    /// Channels per group.
    pub per_group: usize,
    /// Channels.
    pub channels: usize,
}

impl NormStats {
    /// `(mean, inv_std, w, b)` of sample `b`, channel `c`.
    #[inline]
    pub fn channel(&self, b: usize, c: usize) -> (f32, f32, f32, f32) {
        let groups = self.channels / self.per_group;
        let g = b * groups + c / self.per_group;
        (self.mean[g], self.inv_std[g], self.weight[c], self.bias[c])
    }
}

impl GroupNorm {
    /// Loads `weight`/`bias` `(C,)` (fresh: ones and zeros).
    pub fn new(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::Candle(candle_core::Error::Msg(format!(
                "GroupNorm: {channels} channels do not split into {groups} groups"
            ))));
        }
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            groups,
            eps,
        })
    }

    /// A norm from its tensors.
    pub fn from_tensors(weight: Tensor, bias: Tensor, groups: usize, eps: f64) -> Self {
        Self {
            weight,
            bias,
            groups,
            eps,
        }
    }

    /// The number of groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    pub(crate) fn fused_applies(&self, x: &Tensor, train: bool) -> bool {
        !train
            && on_cpu(x)
            && x.dtype() == DType::F32
            && x.rank() >= 2
            && no_grad(&[x, &self.weight, &self.bias])
    }

    /// `GroupNorm(x)`, `(B, C, ...)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(x, false, train)
    }

    /// `SiLU(GroupNorm(x))`.
    pub fn forward_silu(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(x, true, train)
    }

    fn forward_impl(&self, x: &Tensor, silu: bool, train: bool) -> Result<Tensor> {
        if self.fused_applies(x, train) {
            let (b, c) = (x.dim(0)?, x.dim(1)?);
            let hw = x.elem_count() / (b * c).max(1);
            let stats = self.stats(x)?;
            let out = with_slice::<f32, _>(x, |xs| {
                // SAFETY: every element is written below.
                let mut out: Vec<f32> = unsafe { uninit_vec(xs.len()) };
                out.par_chunks_mut(hw.max(1))
                    .zip(xs.par_chunks(hw.max(1)))
                    .enumerate()
                    .for_each(|(plane, (o, s))| {
                        let (mean, inv, w, bias) = stats.channel(plane / c, plane % c);
                        simd::normalise_affine(s, o, mean, inv, w, bias, silu);
                    });
                out
            })?;
            return tensor(out, x.dims());
        }
        let y = self.composite(x)?;
        Ok(if silu { candle_nn::ops::silu(&y)? } else { y })
    }

    pub(crate) fn composite(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (b, c) = (dims[0], dims[1]);
        let dtype = x.dtype();
        let xs = x.to_dtype(match dtype {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        })?;
        let grouped = xs.reshape((b, self.groups, ()))?;
        let n = grouped.dim(2)? as f64;
        let mean = (grouped.sum_keepdim(2)? / n)?;
        let centred = grouped.broadcast_sub(&mean)?;
        let var = (centred.sqr()?.sum_keepdim(2)? / n)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let mut shape = vec![1usize; dims.len()];
        shape[1] = c;
        let w = cast(&self.weight, normed.dtype())?.reshape(shape.as_slice())?;
        let bias = cast(&self.bias, normed.dtype())?.reshape(shape.as_slice())?;
        Ok(normed
            .reshape(dims.as_slice())?
            .broadcast_mul(&w)?
            .broadcast_add(&bias)?
            .to_dtype(dtype)?)
    }

    /// Per-group statistics of the contiguous f32 CPU tensor `x` (two passes: mean, then the
    /// mean of centred squares, as the composite formula).
    pub(crate) fn stats(&self, x: &Tensor) -> Result<NormStats> {
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        let hw = x.elem_count() / (b * c).max(1);
        let per_group = c / self.groups;
        let len = per_group * hw;
        let eps = self.eps as f32;
        let (mean, inv_std): (Vec<f32>, Vec<f32>) = with_slice::<f32, _>(x, |xs| {
            xs.par_chunks(len.max(1))
                .map(|g| {
                    let m = simd::sum(g) / len as f32;
                    let var = simd::centred_square_sum(g, m) / len as f32;
                    (m, 1.0 / (var + eps).sqrt())
                })
                .unzip()
        })?;
        let weight = with_slice::<f32, _>(&cast(&self.weight, DType::F32)?, |w| w.to_vec())?;
        let bias = with_slice::<f32, _>(&cast(&self.bias, DType::F32)?, |w| w.to_vec())?;
        Ok(NormStats {
            mean,
            inv_std,
            weight,
            bias,
            per_group,
            channels: c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_kernel_matches_the_composite_formula_and_gradients_flow() {
        let dev = Device::Cpu;
        let x = (Tensor::randn(0f32, 2.0, (2, 8, 5, 7), &dev).unwrap() + 0.5).unwrap();
        let gn = GroupNorm::from_tensors(
            Tensor::randn(1f32, 0.2, 8, &dev).unwrap(),
            Tensor::randn(0f32, 0.2, 8, &dev).unwrap(),
            4,
            1e-6,
        );
        for silu in [false, true] {
            let fused = gn.forward_impl(&x, silu, false).unwrap();
            let mut want = gn.composite(&x).unwrap();
            if silu {
                want = candle_nn::ops::silu(&want).unwrap();
            }
            let d = (fused - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "silu {silu}: {d}");
        }
        let w = Var::ones(8, DType::F32, &dev).unwrap();
        let b = Var::zeros(8, DType::F32, &dev).unwrap();
        let gn = GroupNorm::from_tensors(w.as_tensor().clone(), b.as_tensor().clone(), 2, 1e-6);
        let loss = gn
            .forward_silu(&x, true)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        assert!(grads.get(&w).is_some() && grads.get(&b).is_some());
    }
}
