//! Per-token L2 normalisation of the CLIP hidden states, as diffusers' `VQDiffusionPipeline._encode_prompt`
//! does after the text encoder (`prompt_embeds / prompt_embeds.norm(dim=-1, keepdim=True)`, which
//! replicates the original's `normalize: True` in `CLIPTextEmbedding`; `docs/reference-behaviour.md` §1.3).

use candle_core::{D, DType, Result, Tensor};

/// `e[.., l, :] / ‖e[.., l, :]‖₂` over the last dimension, with **no epsilon** (as in the
/// reference): an all-zero vector gives NaN. Computed in f32 and returned in the input dtype.
pub fn l2_normalise_tokens(hidden: &Tensor) -> Result<Tensor> {
    let dtype = hidden.dtype();
    let x = hidden.to_dtype(DType::F32)?;
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    x.broadcast_div(&norm)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rows_have_unit_norm() -> Result<()> {
        let x = Tensor::new(&[[[3f32, 4.0], [0.0, -2.0]]], &Device::Cpu)?;
        let y = l2_normalise_tokens(&x)?;
        assert_eq!(
            y.to_vec3::<f32>()?,
            vec![vec![vec![0.6, 0.8], vec![0.0, -1.0]]]
        );
        Ok(())
    }
}
