//! The three jointly trained parts of the embedded model in one `VarMap`: the CLIP-architecture
//! text encoder (`text_encoder.*`), the denoising transformer (`transformer.*`) and the learned
//! classifier-free-guidance null embedding (`null.embeddings`, `(77, C)`), with the conditioning
//! the pipeline applies at inference: per-token L2-normalised text states, replaced by the null
//! embedding (as stored) for dropped captions.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use clip_text::{ClipTextModel, l2_normalise_tokens};
use vq_transformer::Transformer2DModel;

use super::config::EmbeddedConfig;
use super::seeded_init::{embedded_init_rule, seeded_init};

/// Name prefixes of the three parts in the `VarMap`.
pub const TEXT_PREFIX: &str = "text_encoder";
/// See [`TEXT_PREFIX`].
pub const TRANSFORMER_PREFIX: &str = "transformer";
/// See [`TEXT_PREFIX`].
pub const NULL_KEY: &str = "null.embeddings";

/// Text encoder + denoiser + null embedding on one `VarMap`.
pub struct JointModel {
    /// Every trainable variable.
    pub varmap: VarMap,
    /// The text encoder.
    pub text: ClipTextModel,
    /// The denoiser.
    pub transformer: Transformer2DModel,
    /// The null condition `(77, C)`.
    pub null: Var,
}

impl JointModel {
    /// A freshly initialised model (seeded, see [`embedded_init_rule`]).
    pub fn new(config: &EmbeddedConfig) -> anyhow::Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let text = ClipTextModel::new(vb.pp(TEXT_PREFIX), &config.text)?;
        let transformer = Transformer2DModel::new(vb.pp(TRANSFORMER_PREFIX), &config.transformer)?;
        let shape = (config.text.max_position_embeddings, config.text.hidden_size);
        vb.get_with_hints(shape, NULL_KEY, candle_nn::Init::Const(0.0))?;
        seeded_init(
            &varmap,
            config.seed,
            embedded_init_rule(&config.text, config.denoiser.context_projection_scale),
        )?;
        let null = var(&varmap, NULL_KEY);
        Ok(Self {
            varmap,
            text,
            transformer,
            null,
        })
    }

    /// The conditioning states `(B, 77, C)`: normalised text states where `keep[b]`, the null
    /// embedding elsewhere. Differentiable in every part.
    pub fn condition(&self, ids: &Tensor, keep: &[bool]) -> anyhow::Result<Tensor> {
        condition_with_null(&self.text, &self.null, ids, keep)
    }

    /// Copies of every variable, by name.
    pub fn tensors(&self) -> anyhow::Result<HashMap<String, Tensor>> {
        let data = self.varmap.data().lock().expect("VarMap lock poisoned");
        data.iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// The variables under `prefix.` with the prefix removed, converted to `dtype`.
    pub fn part(&self, prefix: &str, dtype: DType) -> anyhow::Result<HashMap<String, Tensor>> {
        let lead = format!("{prefix}.");
        let data = self.varmap.data().lock().expect("VarMap lock poisoned");
        data.iter()
            .filter_map(|(k, v)| k.strip_prefix(&lead).map(|s| (s.to_string(), v)))
            .map(|(k, v)| Ok((k, v.as_tensor().to_dtype(dtype)?)))
            .collect()
    }

    /// Overwrites every variable from `tensors` (all must be present with the same shapes;
    /// other entries, e.g. training state, are ignored).
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        let data = self.varmap.data().lock().expect("VarMap lock poisoned");
        for (name, var) in data.iter() {
            let saved = tensors
                .get(name)
                .ok_or_else(|| anyhow::anyhow!("checkpoint lacks {name}"))?;
            set_checked(name, var, saved)?;
        }
        Ok(())
    }

    /// Overwrites the variables named in `tensors` (a part, e.g. the text encoder's).
    pub fn load_part(&self, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        let data = self.varmap.data().lock().expect("VarMap lock poisoned");
        for (name, saved) in tensors {
            let var = data
                .get(name)
                .ok_or_else(|| anyhow::anyhow!("the model has no variable {name}"))?;
            set_checked(name, var, saved)?;
        }
        Ok(())
    }

    /// The variables as (name, var), sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("VarMap lock poisoned");
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// `var = saved` (as f32) after checking that the shapes agree.
fn set_checked(name: &str, var: &Var, saved: &Tensor) -> anyhow::Result<()> {
    anyhow::ensure!(
        saved.dims() == var.dims(),
        "{name}: saved shape {:?}, model {:?}",
        saved.dims(),
        var.dims()
    );
    Ok(var.set(&saved.to_dtype(DType::F32)?)?)
}

fn var(varmap: &VarMap, name: &str) -> Var {
    varmap
        .data()
        .lock()
        .expect("VarMap lock poisoned")
        .get(name)
        .cloned()
        .expect("registered variable")
}

/// Normalised text states of `ids` `(B, 77)` from `text`, with `null` `(77, C)` (as stored) in
/// place of the rows where `!keep[b]` — the conditioning of every jointly trained model here.
/// Differentiable in the text encoder and the null embedding.
pub fn condition_with_null(
    text: &ClipTextModel,
    null: &Var,
    ids: &Tensor,
    keep: &[bool],
) -> anyhow::Result<Tensor> {
    let states = l2_normalise_tokens(&text.forward(ids)?)?;
    if keep.iter().all(|&k| k) {
        return Ok(states);
    }
    let k = Tensor::from_vec(
        keep.iter()
            .map(|&k| f32::from(u8::from(k)))
            .collect::<Vec<_>>(),
        (keep.len(), 1, 1),
        &Device::Cpu,
    )?;
    let null = null.as_tensor().unsqueeze(0)?;
    Ok((states.broadcast_mul(&k)? + null.broadcast_mul(&(1.0 - &k)?)?)?)
}
