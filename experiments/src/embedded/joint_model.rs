//! The recipe's joint model is `vq-train`'s [`JointModel`] (text encoder, denoiser and learned
//! null embedding on one `VarMap`, conditioned as the pipeline conditions at inference), with
//! the recipe's own seeded initialisation ([`embedded_init_rule`]).

use candle_core::Device;

use super::config::EmbeddedConfig;
use super::seeded_init::{embedded_init_rule, seeded_init};
pub use vq_train::{JointModel, NULL_KEY, TEXT_PREFIX, TRANSFORMER_PREFIX, condition_with_null};

/// A freshly initialised model of `config` (seeded, see [`embedded_init_rule`]).
pub fn new_joint_model(config: &EmbeddedConfig) -> anyhow::Result<JointModel> {
    let model = JointModel::new(&config.text, &config.transformer, true, &Device::Cpu)?;
    seeded_init(
        &model.varmap,
        config.seed,
        embedded_init_rule(&config.text, config.denoiser.context_projection_scale),
    )?;
    Ok(model)
}
