//! `AdaLayerNorm` (diffusers `normalization.py`, docs/reference-behaviour.md §3.3): `τ = emb[t]`,
//! `u = linear(silu(τ))`, `scale = u[..D]`, `shift = u[D..]` (**scale first**), and
//! `y = LN(x)·(1 + scale) + shift` with an inner LayerNorm without affine parameters
//! (eps 1e-5).
//!
//! Timesteps: one shared timestep (what diffusers supports) or one per sample, in which case
//! sample `b` is normalised with the scale/shift of `t[b]` — the original VQ-Diffusion
//! semantics, and the same as running diffusers once per sample.
//!
//! For inference `u` depends on nothing but the timestep, so [`AdaLayerNorm::tabulated`]
//! replaces `emb` and `linear` (a `(2D, D)` matrix) by `u` for every row of `emb`: the same
//! products computed once, in a table of `(num_embeddings, 2D)`.

use candle_core::{DType, Module, Tensor};
use candle_nn::{Init, VarBuilder};

use discrete_diffusion::Timesteps;
use vq_nn::{Linear, cast, layer_norm_as};

use crate::Result;

/// Timesteps-conditioned LayerNorm.
#[derive(Debug, Clone)]
pub struct AdaLayerNorm {
    timestep: TimestepModulation,
    eps: f64,
}

/// Where `u = linear(silu(emb[t]))` comes from.
#[derive(Debug, Clone)]
enum TimestepModulation {
    /// The checkpoint's parameters.
    Learned { emb: Tensor, linear: Linear },
    /// `u` for every row of `emb`, `(num_embeddings, 2D)` ([`AdaLayerNorm::tabulated`]).
    Table(Tensor),
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
        Ok(Self {
            timestep: TimestepModulation::Learned { emb, linear },
            eps,
        })
    }

    /// This norm for inference, with `emb` and `linear` replaced by `u = linear(silu(emb))`
    /// for every timestep, computed now in f32 (`(num_embeddings, 2D)`: 100 × 2816 values
    /// instead of the 2816 × 1408 matrix at the ITHQ shape). The modulations are the same
    /// products; a norm already tabulated is returned as it is. Such a norm no longer has the
    /// embedding rows that [`AdaLayerNorm::modulation_for_rows`]' mean-row fallback needs.
    pub fn tabulated(&self) -> Result<Self> {
        let table = match &self.timestep {
            TimestepModulation::Learned { emb, linear } => {
                let tau = cast(&emb.detach(), DType::F32)?;
                linear.forward(&candle_nn::ops::silu(&tau)?)?.contiguous()?
            }
            TimestepModulation::Table(_) => return Ok(self.clone()),
        };
        Ok(Self {
            timestep: TimestepModulation::Table(table),
            eps: self.eps,
        })
    }

    /// Whether [`AdaLayerNorm::tabulated`] made this norm.
    pub fn is_tabulated(&self) -> bool {
        matches!(self.timestep, TimestepModulation::Table(_))
    }

    /// Rows of the timestep table.
    pub fn num_embeddings(&self) -> usize {
        match &self.timestep {
            TimestepModulation::Learned { emb, .. } => emb.dim(0).unwrap_or(0),
            TimestepModulation::Table(table) => table.dim(0).unwrap_or(0),
        }
    }

    /// `(1 + scale, shift)`, each `(G, D)` in `dtype`: `G = 1` for a shared timestep, `G = B`
    /// for per-sample timesteps.
    pub fn modulation(&self, t: &Timesteps, dtype: DType) -> Result<(Tensor, Tensor)> {
        let ids: Vec<u32> = t.as_slice().iter().map(|&t| t as u32).collect();
        match &self.timestep {
            TimestepModulation::Learned { emb, linear } => {
                let ids = Tensor::from_vec(ids, t.as_slice().len(), emb.device())?;
                let tau = cast(&emb.index_select(&ids, 0)?, dtype)?;
                split(&linear.forward(&candle_nn::ops::silu(&tau)?)?)
            }
            TimestepModulation::Table(table) => {
                let ids = Tensor::from_vec(ids, t.as_slice().len(), table.device())?;
                split(&cast(&table.index_select(&ids, 0)?, dtype)?)
            }
        }
    }

    /// `(1 + scale, shift)` `(B, D)` for one table row per sample; an index past the table
    /// takes the **mean of all rows** (the original VQ-Diffusion's fallback, which makes an
    /// out-of-range class — ImageNet's 1000 on a 1000-row table — the "no class" condition;
    /// here decided per sample, the original looks at the first sample only).
    pub fn modulation_for_rows(&self, rows: &[usize], dtype: DType) -> Result<(Tensor, Tensor)> {
        let (emb, linear) = match &self.timestep {
            TimestepModulation::Learned { emb, linear } => (emb, linear),
            TimestepModulation::Table(_) => {
                return Err(crate::Error::Unsupported(
                    "a tabulated AdaLayerNorm has no embedding rows for per-row modulation".into(),
                ));
            }
        };
        let n = self.num_embeddings();
        // The mean row only when a sample asks for it (every guided step's null half does on
        // a table without a learned null row; ordinary labels never do).
        let mean = if rows.iter().any(|&r| r >= n) {
            Some(emb.mean_keepdim(0)?)
        } else {
            None
        };
        let picked = rows
            .iter()
            .map(|&r| match &mean {
                Some(m) if r >= n => Ok(m.clone()),
                _ => Ok(emb.narrow(0, r, 1)?),
            })
            .collect::<Result<Vec<_>>>()?;
        let tau = cast(&Tensor::cat(&picked, 0)?, dtype)?;
        split(&linear.forward(&candle_nn::ops::silu(&tau)?)?)
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

/// `(1 + scale, shift)` from `u` `(G, 2D)`: scale first.
fn split(u: &Tensor) -> Result<(Tensor, Tensor)> {
    let dim = u.dim(1)? / 2;
    let scale = (u.narrow(1, 0, dim)? + 1.0)?;
    let shift = u.narrow(1, dim, dim)?;
    Ok((scale.contiguous()?, shift.contiguous()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    #[test]
    fn the_table_gives_the_modulations_of_the_parameters() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let norm = AdaLayerNorm::new(vb, 24, 7, 1e-5).unwrap();
        let table = norm.tabulated().unwrap();
        assert!(table.is_tabulated() && !norm.is_tabulated());
        assert_eq!(table.num_embeddings(), 7);
        let x = Tensor::randn(0f32, 1.0, (3, 5, 24), &Device::Cpu).unwrap();
        for t in [Timesteps::Shared(4), Timesteps::PerSample(vec![0, 6, 2])] {
            let want = norm.forward(&x, &t, false).unwrap();
            let got = table.forward(&x, &t, false).unwrap();
            let diff = (want - got).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        }
        // Past the table, and the per-row path that needs the embedding, are errors.
        assert!(table.modulation(&Timesteps::Shared(7), DType::F32).is_err());
        let err = table.modulation_for_rows(&[0], DType::F32).unwrap_err();
        assert!(err.to_string().contains("tabulated"), "{err}");
        assert!(table.tabulated().unwrap().is_tabulated());
    }
}
