//! [`Condition2ImageModel`]: a class-conditional or unconditional VQ-Diffusion denoiser to
//! train — the original's `Condition2ImageTransformer` (ImageNet, Gu et al. 2022 §4.3) or
//! `UnCondition2ImageTransformer` (`num_labels = 0`) on a `VarMap` whose names are the
//! checkpoint's keys — fresh ([`Condition2ImageModel::new`], seeded with the original's
//! initialisation, [`original_init_rule`]) or from a model's weights
//! ([`Condition2ImageModel::from_weights`], to fine-tune a converted ImageNet model).
//!
//! Its condition is `Option<usize>`: a class label, or `None` for "no class" (the null label:
//! the learned row of a `num_labels + 1`-row table, else the mean row). Dropped examples use
//! the null label too, which is how classifier-free guidance is trained for class models.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use discrete_diffusion::Timesteps;
use vq_transformer::{Condition2ImageConfig, Condition2ImageTransformer};

use crate::joint_model::{load_strict, sorted_vars};
use crate::{Error, InitRule, Result, TrainableDenoiser, save_tensors_atomic, seeded_init};

/// A class-conditional or unconditional denoiser on one `VarMap`.
pub struct Condition2ImageModel {
    /// Every variable, named as the checkpoint's keys.
    pub varmap: VarMap,
    /// The denoiser.
    pub transformer: Condition2ImageTransformer,
    /// The dtype each variable was stored in (for saving it back the same way).
    stored_dtypes: HashMap<String, DType>,
}

/// The original VQ-Diffusion's initialisation of its class and unconditional denoisers
/// (`_init_weights`): Linear and Embedding weights `N(0, 0.02²)` (token, position and AdaLN
/// tables included), biases 0, LayerNorm weights 1; the 3×3 convolutions, which it leaves at
/// PyTorch's default, `U(±1/√fan_in)` (here with zero biases).
pub fn original_init_rule(name: &str, dims: &[usize]) -> InitRule {
    if name.ends_with(".bias") {
        InitRule::Const(0.0)
    } else if dims.len() == 1 {
        InitRule::Const(1.0)
    } else if dims.len() == 4 {
        let fan_in: usize = dims[1..].iter().product();
        InitRule::Uniform(1.0 / (fan_in.max(1) as f32).sqrt())
    } else {
        InitRule::Normal(0.02)
    }
}

impl Condition2ImageModel {
    fn build(config: &Condition2ImageConfig, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let transformer = Condition2ImageTransformer::new(vb, config)
            .map_err(|e| Error::InvalidSetting(format!("transformer: {e}")))?;
        Ok(Self {
            varmap,
            transformer,
            stored_dtypes: HashMap::new(),
        })
    }

    /// A new model of `config`, initialised by [`original_init_rule`] from `seed` (the same
    /// seed gives the same weights in every process).
    pub fn new(config: &Condition2ImageConfig, seed: u64, device: &Device) -> Result<Self> {
        let model = Self::build(config, device)?;
        seeded_init(&model.varmap, seed, original_init_rule)?;
        Ok(model)
    }

    /// A model of `config` with the weights of `path` (safetensors or PyTorch `.bin`, the
    /// checkpoint's key names), strictly: every variable there with its shape, every tensor
    /// used.
    pub fn from_weights(
        config: &Condition2ImageConfig,
        path: &Path,
        device: &Device,
    ) -> Result<Self> {
        let mut model = Self::build(config, device)?;
        let vars = model.named_vars();
        load_strict(&vars, "", path, device, &mut model.stored_dtypes)?;
        Ok(model)
    }

    /// The configuration.
    pub fn config(&self) -> &Condition2ImageConfig {
        self.transformer.config()
    }

    /// The variables as (name, var), sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    /// The weights by key, each in the dtype it was loaded from (f32 for a fresh model).
    pub fn weights(&self) -> Result<HashMap<String, Tensor>> {
        self.named_vars()
            .into_iter()
            .map(|(name, v)| {
                let dtype = self.stored_dtypes.get(&name).copied().unwrap_or(DType::F32);
                Ok((name, v.as_tensor().to_dtype(dtype)?))
            })
            .collect()
    }

    /// Writes `root/transformer/config.json` (with the original's class name) and
    /// `root/transformer/diffusion_pytorch_model.safetensors`.
    pub fn save_weights(&self, root: &Path) -> Result<()> {
        let dir = root.join("transformer");
        crate::write_json_atomic(
            &dir.join("config.json"),
            &vq_nn::with_diffusers_class(self.config(), self.config().class_name()),
        )?;
        save_tensors_atomic(
            &dir.join("diffusion_pytorch_model.safetensors"),
            &self.weights()?,
        )
    }
}

impl TrainableDenoiser for Condition2ImageModel {
    type Condition = Option<usize>;

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn trainable(&self, _freeze_text_encoder: bool) -> Vec<(String, Var)> {
        self.named_vars()
    }

    fn has_learned_null(&self) -> bool {
        self.config().has_learned_null()
    }

    fn training_log_p_x0(
        &self,
        x_t: &Tensor,
        t: &[usize],
        conditions: &[Option<usize>],
        keep: &[bool],
    ) -> Result<Tensor> {
        let config = self.config();
        let null = config.null_label();
        let labels = conditions
            .iter()
            .zip(keep)
            .map(|(&c, &k)| match (c, k) {
                (Some(l), _) if config.is_unconditional() => Err(Error::InvalidSetting(format!(
                    "class label {l} for an unconditional model: give its data no labels"
                ))),
                (Some(l), _) if l >= config.num_labels => Err(Error::InvalidSetting(format!(
                    "class label {l} is out of range: the model has classes 0..{}",
                    config.num_labels
                ))),
                (Some(l), true) => Ok(l),
                _ => Ok(null),
            })
            .collect::<Result<Vec<_>>>()?;
        self.transformer
            .forward_t(x_t, Timesteps::PerSample(t.to_vec()), &labels, true)
            .map_err(|e| Error::InvalidSetting(format!("transformer: {e}")))
    }
}
