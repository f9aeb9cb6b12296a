//! `AdaLayerNorm` (diffusers `normalization.py`, docs/reference-behaviour.md §3.3): `τ = emb[t]`,
//! `u = linear(silu(τ))`, `scale = u[..D]`, `shift = u[D..]` (**scale first**), and
//! `y = LN(x)·(1 + scale) + shift` with an inner LayerNorm without affine parameters
//! (eps 1e-5).
//!
//! Timesteps: one shared timestep (what diffusers supports) or one per sample, in which case
//! sample `b` is normalised with the scale/shift of `t[b]` — the original VQ-Diffusion
//! semantics, and the same as running diffusers once per sample.

use candle_core::{DType, Module, Tensor};
use candle_nn::{Init, VarBuilder};

use discrete_diffusion::Timesteps;
use vq_nn::{Linear, cast, layer_norm_as};

use crate::Result;

/// Timesteps-conditioned LayerNorm.
#[derive(Debug, Clone)]
pub struct AdaLayerNorm {
    emb: Tensor,
    linear: Linear,
    eps: f64,
}

impl AdaLayerNorm {
    /// Loads `emb.weight` `(num_embeddings, D)` and `linear` `(2D, D)` with bias.
    pub fn new(vb: VarBuilder, dim: usize, num_embeddings: usize, eps: f64) -> Result<Self> {
        let emb = vb.pp("emb").get_with_hints(
            (num_embeddings, dim),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let linear = Linear::new(vb.pp("linear"), dim, 2 * dim, true)?;
        Ok(Self { emb, linear, eps })
    }

    /// Rows of the timestep table.
    pub fn num_embeddings(&self) -> usize {
        self.emb.dim(0).unwrap_or(0)
    }

    /// `(1 + scale, shift)`, each `(G, D)` in `dtype`: `G = 1` for a shared timestep, `G = B`
    /// for per-sample timesteps.
    pub fn modulation(&self, t: &Timesteps, dtype: DType) -> Result<(Tensor, Tensor)> {
        let ids: Vec<u32> = t.as_slice().iter().map(|&t| t as u32).collect();
        let ids = Tensor::from_vec(ids, t.as_slice().len(), self.emb.device())?;
        let tau = cast(&self.emb.index_select(&ids, 0)?, dtype)?;
        let u = self.linear.forward(&candle_nn::ops::silu(&tau)?)?;
        let dim = self.emb.dim(1)?;
        let scale = (u.narrow(1, 0, dim)? + 1.0)?;
        let shift = u.narrow(1, dim, dim)?;
        Ok((scale.contiguous()?, shift.contiguous()?))
    }

    /// `(1 + scale, shift)` `(B, D)` for one table row per sample; an index past the table
    /// takes the **mean of all rows** (the original VQ-Diffusion's fallback, which makes an
    /// out-of-range class — ImageNet's 1000 on a 1000-row table — the "no class" condition;
    /// here decided per sample, the original looks at the first sample only).
    pub fn modulation_for_rows(&self, rows: &[usize], dtype: DType) -> Result<(Tensor, Tensor)> {
        let n = self.num_embeddings();
        // The mean row only when a sample asks for it (every guided step's null half does on
        // a table without a learned null row; ordinary labels never do).
        let mean = if rows.iter().any(|&r| r >= n) {
            Some(self.emb.mean_keepdim(0)?)
        } else {
            None
        };
        let picked = rows
            .iter()
            .map(|&r| match &mean {
                Some(m) if r >= n => Ok(m.clone()),
                _ => Ok(self.emb.narrow(0, r, 1)?),
            })
            .collect::<Result<Vec<_>>>()?;
        let tau = cast(&Tensor::cat(&picked, 0)?, dtype)?;
        let u = self.linear.forward(&candle_nn::ops::silu(&tau)?)?;
        let dim = self.emb.dim(1)?;
        let scale = (u.narrow(1, 0, dim)? + 1.0)?;
        let shift = u.narrow(1, dim, dim)?;
        Ok((scale.contiguous()?, shift.contiguous()?))
    }

    /// Normalises `x` `(B, N, D)` with precomputed [`AdaLayerNorm::modulation`].
    pub fn forward_modulated(
        &self,
        x: &Tensor,
        modulation: &(Tensor, Tensor),
        dtype: DType,
        train: bool,
    ) -> Result<Tensor> {
        let (scale, shift) = modulation;
        let (alpha, beta) = if scale.dim(0)? == 1 {
            (scale.squeeze(0)?, shift.squeeze(0)?)
        } else {
            (scale.clone(), shift.clone())
        };
        Ok(layer_norm_as(x, &alpha, &beta, self.eps, dtype, train)?)
    }

    /// `LN(x)·(1 + scale) + shift` for `x` `(B, N, D)`.
    pub fn forward(&self, x: &Tensor, t: &Timesteps, train: bool) -> Result<Tensor> {
        let m = self.modulation(t, x.dtype())?;
        self.forward_modulated(x, &m, x.dtype(), train)
    }
}
