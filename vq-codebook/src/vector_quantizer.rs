//! diffusers' `VectorQuantizer` (`diffusers/models/autoencoders/vae.py`, `remap=None`,
//! `sane_index_shape=False`), docs/reference-behaviour.md §4.4:
//!
//! * the codebook is `embedding.weight` `(num_vq_embeddings, vq_embed_dim)`;
//! * `get_codebook_entry(ids, (B, H, W, C))` = `embedding(ids)` viewed as NHWC, permuted to NCHW;
//! * `forward(z)` picks for every spatial position the Euclidean-nearest code
//!   (`argmin cdist(z, E)`, here `argmin ‖e‖² − 2 z·e`, the same argmin up to rounding on
//!   near-ties), uses the straight-through estimator `z_q = z + sg[e − z]`, and the loss
//!   `mean((sg[e] − z)²) + β·mean((e − sg[z])²)` when `legacy` (β on the codebook term — the
//!   historical mix-up kept by diffusers for compatibility), `β·mean((sg[e] − z)²) + mean((e − sg[z])²)`
//!   otherwise (β on the commitment term, as in the VQ-VAE paper).

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::error::{Error, Result};
use crate::weights::tensor;

/// The codebook and the nearest-code quantiser.
#[derive(Debug, Clone)]
pub struct VectorQuantizer {
    embedding: Tensor,
    num_embeddings: usize,
    embed_dim: usize,
}

/// Result of [`VectorQuantizer::quantise`].
#[derive(Debug, Clone)]
pub struct Quantised {
    /// `z + sg[e − z]`: the codebook vectors in the forward pass, identity gradient to `z`
    /// (`(B, D, H, W)`).
    pub z_q: Tensor,
    /// Index of the nearest code at every position, `(B, H, W)` u32.
    pub indices: Tensor,
    /// `mean((e − sg[z])²)`: pulls codes towards encoder outputs (gradient to the codebook only).
    pub codebook_loss: Tensor,
    /// `mean((sg[e] − z)²)`: pulls encoder outputs towards their codes (gradient to the encoder only).
    pub commitment_loss: Tensor,
}

impl Quantised {
    /// diffusers' combined quantiser loss with weight `beta`: `commitment + β·codebook` when
    /// `legacy` (diffusers' default), `β·commitment + codebook` otherwise.
    pub fn loss(&self, beta: f64, legacy: bool) -> Result<Tensor> {
        Ok(if legacy {
            (&self.commitment_loss + (&self.codebook_loss * beta)?)?
        } else {
            ((&self.commitment_loss * beta)? + &self.codebook_loss)?
        })
    }
}

impl VectorQuantizer {
    /// Builds the quantiser from the weights under `vb` (`quantize`); a fresh `VarMap` codebook is
    /// initialised like diffusers, uniform in `±1/num_embeddings`.
    pub fn new(vb: VarBuilder, num_embeddings: usize, embed_dim: usize) -> Result<Self> {
        let bound = 1.0 / num_embeddings as f64;
        let embedding = tensor(
            &vb.pp("embedding"),
            &[num_embeddings, embed_dim],
            "weight",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Self {
            embedding,
            num_embeddings,
            embed_dim,
        })
    }

    /// The codebook `(num_embeddings, embed_dim)`.
    pub fn embedding(&self) -> &Tensor {
        &self.embedding
    }

    /// Number of codes.
    pub fn num_embeddings(&self) -> usize {
        self.num_embeddings
    }

    /// Size of a code vector.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    fn check_latents(&self, z: &Tensor) -> Result<(usize, usize, usize, usize)> {
        let (b, c, h, w) = z.dims4().map_err(|_| Error::Shape {
            what: "latents",
            expected: format!("(B, {}, H, W)", self.embed_dim),
            found: z.dims().to_vec(),
        })?;
        if c != self.embed_dim {
            return Err(Error::Channels {
                what: "latents",
                expected: self.embed_dim,
                found: c,
                shape: z.dims().to_vec(),
            });
        }
        Ok((b, c, h, w))
    }

    /// Index of the Euclidean-nearest code for every position of `z` `(B, D, H, W)`:
    /// `(B, H, W)` u32. No gradient flows through this.
    pub fn nearest_indices(&self, z: &Tensor) -> Result<Tensor> {
        let (b, d, h, w) = self.check_latents(z)?;
        let z_flat = z
            .detach()
            .to_dtype(DType::F32)?
            .permute((0, 2, 3, 1))?
            .reshape((b * h * w, d))?;
        let e = self.embedding.detach().to_dtype(DType::F32)?;
        let e_sq = e.sqr()?.sum(1)?.unsqueeze(0)?; // (1, K)
        let dots = z_flat.matmul(&e.t()?)?; // (N, K)
        let dist = e_sq.broadcast_sub(&(dots * 2.0)?)?;
        Ok(dist.argmin(1)?.reshape((b, h, w))?)
    }

    /// Checks that `tokens` is a `(B, H, W)` integer tensor of valid ids and returns it as u32.
    pub fn validate_tokens(&self, tokens: &Tensor) -> Result<Tensor> {
        if tokens.rank() != 3 {
            return Err(Error::Shape {
                what: "tokens",
                expected: "(B, H, W) token grid".into(),
                found: tokens.dims().to_vec(),
            });
        }
        let ids: Vec<i64> = match tokens.dtype() {
            DType::U8 | DType::U32 | DType::I64 => {
                tokens.flatten_all()?.to_dtype(DType::I64)?.to_vec1()?
            }
            other => {
                return Err(Error::Shape {
                    what: "tokens",
                    expected: format!("an integer tensor (u8, u32 or i64), not {other:?}"),
                    found: tokens.dims().to_vec(),
                });
            }
        };
        if let Some((position, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, id)| **id < 0 || **id >= self.num_embeddings as i64)
        {
            return Err(Error::TokenOutOfRange {
                id,
                position,
                num_embeddings: self.num_embeddings,
            });
        }
        Ok(tokens.to_dtype(DType::U32)?)
    }

    /// `get_codebook_entry`: the code vectors of `tokens` `(B, H, W)` as `(B, D, H, W)`.
    pub fn codebook_entry(&self, tokens: &Tensor) -> Result<Tensor> {
        let tokens = self.validate_tokens(tokens)?;
        let (b, h, w) = tokens.dims3()?;
        let flat = tokens.flatten_all()?;
        Ok(self
            .embedding
            .index_select(&flat, 0)?
            .reshape((b, h, w, self.embed_dim))?
            .permute((0, 3, 1, 2))?
            .contiguous()?)
    }

    /// `forward(z)`: nearest codes, straight-through output and the two loss terms.
    pub fn quantise(&self, z: &Tensor) -> Result<Quantised> {
        self.check_latents(z)?;
        let indices = self.nearest_indices(z)?;
        let e = self.codebook_entry(&indices)?;
        let codebook_loss = (&e - z.detach())?.sqr()?.mean_all()?;
        let commitment_loss = (e.detach() - z)?.sqr()?.mean_all()?;
        let z_q = (z + (e - z)?.detach())?;
        Ok(Quantised {
            z_q,
            indices,
            codebook_loss,
            commitment_loss,
        })
    }
}
