//! The autoregressive baseline of the `ar-baseline` study (VQ-Diffusion §4.3, Table 3): the
//! model ([`model`]), its training with the denoiser's recipe ([`trainer`]) and its sampler
//! ([`sampling`]).

pub mod model;
pub mod sampling;
pub mod trainer;
