//! Classifier-free guidance for discrete diffusion in log space (Improved VQ-Diffusion §3.1;
//! diffusers pipeline docs/reference-behaviour.md §1.7): `g = log p_u + s·(log p_c - log p_u)`, i.e.
//! `p̃ ∝ p_u^{1-s} p_c^{s}`, renormalised exactly with a log-sum-exp over the classes.

use candle_core::Tensor;

use crate::Result;
use crate::log_space::log_normalise;

/// Guided, renormalised log-probabilities from unconditional and conditional predictions
/// `(B, K, N)` (unconditional first, as the reference batches them).
pub fn classifier_free_guidance(
    unconditional: &Tensor,
    conditional: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let guided = (unconditional + ((conditional - unconditional)? * scale)?)?;
    log_normalise(&guided)
}
