//! Sampling from the autoregressive baseline: one network call per token in raster order, with
//! classifier-free guidance in log space against the learned null embedding (the same
//! `discrete_diffusion::classifier_free_guidance` as the diffusion pipeline) and Gumbel-max
//! draws from a seeded noise source; then VQ-VAE decoding.

use candle_core::{DType, Tensor};
use discrete_diffusion::{NoiseSource, classifier_free_guidance, gumbel_argmax};
use image::RgbImage;
use vq_codebook::VqModel;

use super::trainer::ArJoint;

/// Tokens `(B, N)` for `prompt_ids` `(B, 77)` with guidance `scale` (1 = off).
pub fn sample_tokens(
    model: &ArJoint,
    prompt_ids: &Tensor,
    scale: f64,
    noise: &mut dyn NoiseSource,
) -> anyhow::Result<Tensor> {
    let b = prompt_ids.dim(0)?;
    let keep = vec![true; b];
    let cond = model.condition(prompt_ids, &keep)?;
    let guided = scale != 1.0;
    let states = if guided {
        Tensor::cat(&[&model.null_states(b)?, &cond], 0)?
    } else {
        cond
    };
    let n = model.ar.config().num_tokens;
    let mut tokens = Tensor::zeros((b, 0), DType::U32, prompt_ids.device())?;
    for i in 0..n {
        // Inputs: [BOS] + tokens so far (length i + 1).
        let bos = Tensor::full(
            model.ar.config().num_classes as u32,
            (b, 1),
            prompt_ids.device(),
        )?;
        let inputs = Tensor::cat(&[&bos, &tokens], 1)?;
        let inputs = if guided {
            Tensor::cat(&[&inputs, &inputs], 0)?
        } else {
            inputs
        };
        let log_p = model.ar.forward(&inputs, &states, false)?.narrow(1, i, 1)?; // (B', 1, K)
        let log_p = if guided {
            let u = log_p.narrow(0, 0, b)?;
            let c = log_p.narrow(0, b, b)?;
            // classifier_free_guidance works on (B, K, N).
            classifier_free_guidance(&u.transpose(1, 2)?, &c.transpose(1, 2)?, scale)?
        } else {
            log_p.transpose(1, 2)?
        };
        let next = gumbel_argmax(&log_p.contiguous()?, noise)?; // (B, 1)
        tokens = Tensor::cat(&[&tokens, &next.to_dtype(DType::U32)?], 1)?;
    }
    Ok(tokens)
}

/// Decodes `(B, N)` tokens on an `h × w` grid to 8-bit images.
pub fn decode(
    vq: &VqModel,
    tokens: &Tensor,
    grid: (usize, usize),
) -> anyhow::Result<Vec<RgbImage>> {
    let b = tokens.dim(0)?;
    let decoded = vq.decode_tokens(&tokens.reshape((b, grid.0, grid.1))?)?;
    Ok(vq_codebook::tensor_to_images(&decoded)?)
}
