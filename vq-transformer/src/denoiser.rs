//! [`discrete_diffusion::Denoiser`] implementations, so the transformer plugs into the
//! samplers and ELBO evaluation: conditioned on raw encoder states (uncached), on a prepared
//! [`TextContext`], or on a [`Guided`] context (classifier-free guidance in one batched pass).

use candle_core::Tensor;
use discrete_diffusion::{Denoiser, Prediction};

use crate::{TextContext, Transformer2DModel};

/// Condition for guided denoising: `2B` prepared states (unconditional first) and the
/// guidance scale.
#[derive(Debug, Clone)]
pub struct Guided {
    /// `[null; prompt]` context of batch `2B`.
    pub context: TextContext,
    /// Guidance scale `s` (1 = no guidance; diffusers' default 5).
    pub scale: f64,
}

impl Denoiser<Tensor> for Transformer2DModel {
    fn log_p_x0(
        &self,
        x_t: &Tensor,
        t: usize,
        states: &Tensor,
    ) -> discrete_diffusion::Result<Tensor> {
        Ok(self.forward(x_t, t, states)?)
    }
}

impl Denoiser<TextContext> for Transformer2DModel {
    fn log_p_x0(
        &self,
        x_t: &Tensor,
        t: usize,
        context: &TextContext,
    ) -> discrete_diffusion::Result<Tensor> {
        Ok(self.forward_with_context(x_t, t, context)?)
    }
}

impl Denoiser<Guided> for Transformer2DModel {
    fn log_p_x0(&self, x_t: &Tensor, t: usize, g: &Guided) -> discrete_diffusion::Result<Tensor> {
        Ok(self.guided_log_p_x0(x_t, t, &g.context, g.scale)?)
    }

    /// Both halves of the guidance batch (one batched pass), combined by the sampler.
    fn predict(
        &self,
        x_t: &Tensor,
        t: usize,
        g: &Guided,
    ) -> discrete_diffusion::Result<Prediction> {
        if g.scale == 1.0 {
            return Ok(Prediction::LogProbs(self.log_p_x0(x_t, t, g)?));
        }
        let (unconditional, conditional) = self.guidance_halves(x_t, t, &g.context)?;
        Ok(Prediction::Guided {
            unconditional,
            conditional,
            scale: g.scale,
        })
    }
}
