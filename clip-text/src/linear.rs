//! Affine projection `y = x Wᵀ + b` (PyTorch `nn.Linear`, weight `(out, in)`), the building block
//! of transformers' `CLIPAttention` and `CLIPMLP`: [`vq_nn::Linear`] (fused bias, residual and
//! quick-GELU epilogues on the CPU), created on a `VarMap` the way transformers'
//! `CLIPPreTrainedModel._init_weights` initialises it (normal with a caller-given std, zero
//! bias).

use candle_nn::{Init, VarBuilder};
use vq_nn::Linear;

use crate::error::Result;

/// Loads `<vb>.weight` `(out, in)` and `<vb>.bias` `(out)`; fresh weights are `N(0, std²)`.
pub(crate) fn linear(vb: VarBuilder, in_dim: usize, out_dim: usize, std: f64) -> Result<Linear> {
    Ok(Linear::new_with_init(
        vb,
        in_dim,
        out_dim,
        true,
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
        Init::Const(0.0),
    )?)
}
