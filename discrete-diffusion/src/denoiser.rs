//! The [`Denoiser`] trait — any network that predicts `log p̂(x_0 | x_t)` plugs into the
//! samplers and ELBO evaluation — plus two adapters: closures ([`FnDenoiser`]) and
//! classifier-free guidance over two conditions ([`ClassifierFreeGuidance`]).

use candle_core::Tensor;

use crate::{Parameterisation, Result, classifier_free_guidance};

/// What a denoiser predicts for one step.
#[derive(Debug, Clone)]
pub enum Prediction {
    /// `log p̂(x_0)`, `(B, K, N)`.
    LogProbs(Tensor),
    /// The two halves of classifier-free guidance, `(B, K, N)` each, for the sampler to combine
    /// ([`crate::classifier_free_guidance`]) — fused with its truncation on the CPU.
    Guided {
        /// The unconditional prediction.
        unconditional: Tensor,
        /// The conditional prediction.
        conditional: Tensor,
        /// Guidance scale `s`.
        scale: f64,
    },
}

impl Prediction {
    /// The combined `log p̂(x_0)`.
    pub fn log_probs(self) -> Result<Tensor> {
        match self {
            Prediction::LogProbs(t) => Ok(t),
            Prediction::Guided {
                unconditional,
                conditional,
                scale,
            } => classifier_free_guidance(&unconditional, &conditional, scale),
        }
    }
}

/// A model of `p̂(x_0 | x_t, condition)`.
pub trait Denoiser<C: ?Sized> {
    /// Log-probabilities over the `K` real classes, `(B, K, N)` f32, for ids `x_t` `(B, N)` at
    /// timestep `t` (shared by the batch).
    fn log_p_x0(&self, x_t: &Tensor, t: usize, condition: &C) -> Result<Tensor>;

    /// The prediction for a sampling step: [`Denoiser::log_p_x0`] by default; guided
    /// denoisers return both halves so that the sampler can fuse guidance with truncation.
    fn predict(&self, x_t: &Tensor, t: usize, condition: &C) -> Result<Prediction> {
        Ok(Prediction::LogProbs(self.log_p_x0(x_t, t, condition)?))
    }

    /// What the output means: `log p̂(x_0 | x_t)` (the default, every model in the papers) or a
    /// direct reverse-step prediction (see [`crate::Parameterisation`]).
    fn parameterisation(&self) -> Parameterisation {
        Parameterisation::X0
    }
}

/// Wraps a closure `(x_t, t, condition) -> log p̂(x_0)` as a [`Denoiser`].
pub struct FnDenoiser<F>(pub F);

impl<C: ?Sized, F> Denoiser<C> for FnDenoiser<F>
where
    F: Fn(&Tensor, usize, &C) -> Result<Tensor>,
{
    fn log_p_x0(&self, x_t: &Tensor, t: usize, condition: &C) -> Result<Tensor> {
        (self.0)(x_t, t, condition)
    }
}

/// Classifier-free guidance as a denoiser: runs `inner` on the given condition and on
/// `unconditional`, and combines them with [`classifier_free_guidance`]. With `scale = 1` the
/// unconditional pass is skipped. (Models that can batch both halves in one pass, like the
/// VQ-Diffusion transformer, implement guidance themselves.)
pub struct ClassifierFreeGuidance<'a, D, C> {
    /// The conditional model.
    pub inner: &'a D,
    /// The null condition (a learned null embedding or the empty prompt's).
    pub unconditional: &'a C,
    /// Guidance scale `s` (1 = no guidance).
    pub scale: f64,
}

impl<D: Denoiser<C>, C> Denoiser<C> for ClassifierFreeGuidance<'_, D, C> {
    fn log_p_x0(&self, x_t: &Tensor, t: usize, condition: &C) -> Result<Tensor> {
        let conditional = self.inner.log_p_x0(x_t, t, condition)?;
        if self.scale == 1.0 {
            return Ok(conditional);
        }
        let unconditional = self.inner.log_p_x0(x_t, t, self.unconditional)?;
        classifier_free_guidance(&unconditional, &conditional, self.scale)
    }

    fn predict(&self, x_t: &Tensor, t: usize, condition: &C) -> Result<Prediction> {
        let conditional = self.inner.log_p_x0(x_t, t, condition)?;
        if self.scale == 1.0 {
            return Ok(Prediction::LogProbs(conditional));
        }
        Ok(Prediction::Guided {
            unconditional: self.inner.log_p_x0(x_t, t, self.unconditional)?,
            conditional,
            scale: self.scale,
        })
    }

    fn parameterisation(&self) -> Parameterisation {
        self.inner.parameterisation()
    }
}
