//! Global gradient-norm clipping for candle (which has none): the L2 norm over every variable's
//! gradient, and the gradients rescaled in the `GradStore` when it exceeds the limit.

use candle_core::Var;
use candle_core::backprop::GradStore;

/// Returns the global gradient norm of `vars` and, if `max_norm` is given and exceeded, scales
/// every gradient by `max_norm / norm`.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[Var],
    max_norm: Option<f64>,
) -> candle_core::Result<f64> {
    let mut total = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    if let Some(max) = max_norm
        && norm > max
        && norm.is_finite()
    {
        let scale = max / norm;
        for v in vars {
            if let Some(g) = grads.get(v) {
                let scaled = (g * scale)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
