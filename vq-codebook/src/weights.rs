//! Parameter loading shared by every module: fetch a tensor from a `VarBuilder` under its
//! diffusers key (the shared reader names the file, key and shapes of any problem). Also builds
//! the three parameterised layers the VQ-VAE uses (3×3/1×1 `Conv2d`, `Linear`, `GroupNorm`) with
//! PyTorch's default initialisation hints (used when the builder is a training `VarMap`).
//!
//! The layers are `vq-nn`'s: fused CPU kernels for inference (a `GroupNorm → SiLU → conv` or
//! `upsample → conv` chain reads its input once), candle's differentiable ops while training.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use vq_nn::{Conv2d, GroupNorm, Linear};

#[allow(unused_imports)]
use crate::error::Error;
use crate::error::Result;

/// GroupNorm epsilon used everywhere in diffusers' VAE blocks (docs/reference-behaviour.md §4.1).
pub const GROUP_NORM_EPS: f64 = 1e-6;

/// The tensor `name` under `vb`'s prefix, with shape `shape`; `init` is used only when `vb` is
/// backed by a `VarMap` that does not hold it yet. Read through a [`vq_nn::WeightSource`], a
/// missing or mis-shaped weight is an [`Error::Weights`] naming the file, the key and both
/// shapes.
pub(crate) fn tensor(vb: &VarBuilder, shape: &[usize], name: &str, init: Init) -> Result<Tensor> {
    Ok(vb.get_with_hints(shape, name, init)?)
}

/// Shape of the stored tensor `name`, if the builder holds it.
pub(crate) fn stored_shape(vb: &VarBuilder, name: &str) -> Option<Vec<usize>> {
    if !vb.contains_tensor(name) {
        return None;
    }
    vb.get_unchecked(name).ok().map(|t| t.dims().to_vec())
}

/// PyTorch's default init bound for a layer with `fan_in` inputs (`kaiming_uniform(a=√5)` gives
/// `1/√fan_in` for the weight; the bias uses the same bound).
fn torch_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

fn uniform(bound: f64) -> Init {
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// `nn.Conv2d(c_in, c_out, k, stride, padding)` with bias, keys `{weight, bias}`.
pub(crate) fn conv2d(
    vb: &VarBuilder,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<Conv2d> {
    Ok(Conv2d::new(
        vb.clone(),
        c_in,
        c_out,
        kernel,
        stride,
        padding,
    )?)
}

/// `nn.Linear(c, c)` with bias, keys `{weight, bias}`. Also accepts a `(c, c, 1, 1)` weight
/// (a 1×1 convolution, as in the original `AttnBlock` and some converted files).
pub(crate) fn linear_square(vb: &VarBuilder, c: usize) -> Result<Linear> {
    let bound = torch_bound(c);
    let weight = match stored_shape(vb, "weight") {
        Some(shape) if shape == [c, c, 1, 1] => vb.get((c, c, 1, 1), "weight")?.reshape((c, c))?,
        _ => tensor(vb, &[c, c], "weight", uniform(bound))?,
    };
    let bias = tensor(vb, &[c], "bias", uniform(bound))?;
    Ok(Linear::from_tensors(weight, Some(bias)))
}

/// `nn.GroupNorm(groups, channels, eps=1e-6, affine=True)`, keys `{weight, bias}`.
/// While training it is composed of ordinary ops, so it has a backward pass.
pub(crate) fn group_norm(vb: &VarBuilder, groups: usize, channels: usize) -> Result<GroupNorm> {
    Ok(GroupNorm::new(
        vb.clone(),
        groups,
        channels,
        GROUP_NORM_EPS,
    )?)
}
