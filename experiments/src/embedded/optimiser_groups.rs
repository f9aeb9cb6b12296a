//! The AdamW parameter groups of the joint trainings (the embedded denoiser and the
//! autoregressive baseline): weight matrices with decay; embeddings, tables, norms, biases and
//! the null embedding without; and the cross-attention projections of the text states with
//! decay at `context_projection_scale` times the learning rate (see
//! [`DenoiserStage::context_projection_scale`](super::config::DenoiserStage) for why).

use candle_core::Var;
use candle_core::backprop::GradStore;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::config::DenoiserStage;
use super::joint_model::NULL_KEY;
use super::seeded_init::is_context_projection;

/// Whether a variable is weight-decayed: weight matrices, not embeddings/tables/norms/biases.
pub fn decays(name: &str, var: &Var) -> bool {
    var.rank() == 2 && !name.contains("emb") && name != NULL_KEY
}

/// The optimisers, each with its learning-rate multiplier.
pub struct OptimiserGroups {
    groups: Vec<(AdamW, f64)>,
}

impl OptimiserGroups {
    /// Splits `named` into the three groups with `stage`'s rate, decay and context scale.
    pub fn new(named: &[(String, Var)], stage: &DenoiserStage) -> candle_core::Result<Self> {
        let group = |keep: &dyn Fn(&str, &Var) -> bool, decay: f64, scale: f64| {
            let vars: Vec<Var> = named
                .iter()
                .filter(|(n, v)| keep(n, v))
                .map(|(_, v)| v.clone())
                .collect();
            let params = ParamsAdamW {
                lr: stage.learning_rate * scale,
                weight_decay: decay,
                ..Default::default()
            };
            AdamW::new(vars, params).map(|opt| (opt, scale))
        };
        let wd = stage.weight_decay;
        Ok(Self {
            groups: vec![
                group(&|n, v| decays(n, v) && !is_context_projection(n), wd, 1.0)?,
                group(
                    &|n, _| is_context_projection(n),
                    wd,
                    stage.context_projection_scale,
                )?,
                group(&|n, v| !decays(n, v), 0.0, 1.0)?,
            ],
        })
    }

    /// One update of every group at base rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        for (opt, scale) in &mut self.groups {
            opt.set_learning_rate(lr * *scale);
            opt.step(grads)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::config::EmbeddedConfig;
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn context_projections_move_at_their_scaled_rate() -> anyhow::Result<()> {
        let var = |v: f32| Var::from_tensor(&Tensor::new(&[[v, v]], &Device::Cpu)?);
        let named = vec![
            ("transformer.b.attn2.to_k.weight".to_string(), var(1.0)?),
            ("transformer.b.attn1.to_k.weight".to_string(), var(1.0)?),
            ("transformer.b.norm.bias".to_string(), var(1.0)?.clone()),
        ];
        let mut stage = EmbeddedConfig::quick().denoiser;
        stage.weight_decay = 0.0;
        stage.context_projection_scale = 4.0;
        let mut groups = OptimiserGroups::new(&named, &stage)?;
        let loss = named
            .iter()
            .map(|(_, v)| v.as_tensor().sum_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let total = Tensor::stack(&loss, 0)?.sum_all()?;
        groups.step(&total.backward()?, 0.01)?;
        let moved: Vec<f32> = named
            .iter()
            .map(|(_, v)| {
                Ok(1.0
                    - v.as_tensor()
                        .to_dtype(DType::F32)?
                        .flatten_all()?
                        .to_vec1::<f32>()?[0])
            })
            .collect::<candle_core::Result<_>>()?;
        // Adam's first step moves every parameter by its rate.
        assert!((moved[0] - 0.04).abs() < 1e-4, "{moved:?}");
        assert!((moved[1] - 0.01).abs() < 1e-4, "{moved:?}");
        assert!((moved[2] - 0.01).abs() < 1e-4, "{moved:?}");
        Ok(())
    }
}
