//! `ImagePositionalEmbeddings` (diffusers attribute `latent_image_embedding`, docs/reference-behaviour.md §3.2):
//! `e[b, n] = emb[x[b, n]] + (height_emb[h] + width_emb[w])` with `n = h·W + w`, the position
//! sum computed first as in diffusers.

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::{Error, Result};
use vq_nn::cast;

/// Token embedding plus learned row and column embeddings of the latent grid.
#[derive(Debug, Clone)]
pub struct ImagePositionalEmbeddings {
    emb: Tensor,
    height_emb: Tensor,
    width_emb: Tensor,
    num_embed: usize,
    height: usize,
    width: usize,
}

impl ImagePositionalEmbeddings {
    /// Loads `emb.weight` `(K, D)`, `height_emb.weight` `(H, D)`, `width_emb.weight` `(W, D)`.
    pub fn new(
        vb: VarBuilder,
        num_embed: usize,
        height: usize,
        width: usize,
        dim: usize,
    ) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        Ok(Self {
            emb: vb
                .pp("emb")
                .get_with_hints((num_embed, dim), "weight", init)?,
            height_emb: vb
                .pp("height_emb")
                .get_with_hints((height, dim), "weight", init)?,
            width_emb: vb
                .pp("width_emb")
                .get_with_hints((width, dim), "weight", init)?,
            num_embed,
            height,
            width,
        })
    }

    /// Embeds ids `x` `(B, N)` (`N ≤ H·W`, row-major positions) into `(B, N, D)` in `dtype`.
    pub fn forward(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        let (b, n) = x.dims2().map_err(|_| Error::Shape {
            what: "x_t",
            expected: "(batch, tokens) token ids".into(),
            found: x.dims().to_vec(),
        })?;
        if n > self.height * self.width {
            return Err(Error::Shape {
                what: "x_t",
                expected: format!("at most {} tokens per sample", self.height * self.width),
                found: x.dims().to_vec(),
            });
        }
        let ids = x.to_dtype(DType::U32)?;
        if let Some(&id) = ids
            .flatten_all()?
            .to_vec1::<u32>()?
            .iter()
            .find(|&&id| id as usize >= self.num_embed)
        {
            return Err(Error::TokenOutOfRange {
                id,
                limit: self.num_embed,
            });
        }
        let dim = self.emb.dim(1)?;
        let tokens = cast(&self.emb.index_select(&ids.flatten_all()?, 0)?, dtype)?;
        let tokens = tokens.reshape((b, n, dim))?;
        let h = cast(&self.height_emb, dtype)?.reshape((self.height, 1, dim))?;
        let w = cast(&self.width_emb, dtype)?.reshape((1, self.width, dim))?;
        let pos = h
            .broadcast_add(&w)?
            .reshape((1, self.height * self.width, dim))?
            .narrow(1, 0, n)?;
        Ok(tokens.broadcast_add(&pos)?)
    }
}
