//! The jointly trained parts of a VQ-Diffusion model on one `VarMap`: the CLIP text encoder
//! (`text_encoder.*`), the denoising transformer (`transformer.*`) and, when the model has one,
//! the learned classifier-free-guidance null embedding (`null.embeddings`, `(L, C)`), with the
//! conditioning the pipeline applies at inference: per-token L2-normalised text states, replaced
//! by the null embedding for dropped captions (Improved VQ-Diffusion, §3.2).
//!
//! Built fresh from configs ([`JointModel::new`]) or from the weight files of an existing model
//! ([`JointModel::from_weights`], for fine-tuning): variable names are the checkpoint keys under
//! their prefix, so loading and [`JointModel::save_weights`] are name for name, strict both ways.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use clip_text::{ClipTextConfig, ClipTextModel, l2_normalise_tokens};
use vq_transformer::{Transformer2DConfig, Transformer2DModel};

use crate::{Error, Result, save_tensors_atomic};

/// Name prefix of the text encoder's variables.
pub const TEXT_PREFIX: &str = "text_encoder";
/// Name prefix of the denoiser's variables.
pub const TRANSFORMER_PREFIX: &str = "transformer";
/// Name of the learned null embedding.
pub const NULL_KEY: &str = "null.embeddings";

/// Text encoder + denoiser (+ null embedding) on one `VarMap`.
pub struct JointModel {
    /// Every trainable variable.
    pub varmap: VarMap,
    /// The text encoder.
    pub text: ClipTextModel,
    /// The denoiser.
    pub transformer: Transformer2DModel,
    /// The learned null condition `(L, C)`, if the model has one.
    pub null: Option<Var>,
    /// The dtype each variable was stored in (for saving it back the same way).
    stored_dtypes: HashMap<String, DType>,
}

impl JointModel {
    /// A model with candle's default initialisation (f32, on `device`).
    pub fn new(
        text: &ClipTextConfig,
        transformer: &Transformer2DConfig,
        learned_null: bool,
        device: &Device,
    ) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let text_model = ClipTextModel::new(vb.pp(TEXT_PREFIX), text)
            .map_err(|e| Error::InvalidSetting(format!("text encoder: {e}")))?;
        let transformer_model = Transformer2DModel::new(vb.pp(TRANSFORMER_PREFIX), transformer)
            .map_err(|e| Error::InvalidSetting(format!("transformer: {e}")))?;
        let null = if learned_null {
            let shape = (text.max_position_embeddings, text.hidden_size);
            vb.get_with_hints(shape, NULL_KEY, candle_nn::Init::Const(0.0))?;
            Some(var(&varmap, NULL_KEY))
        } else {
            None
        };
        Ok(Self {
            varmap,
            text: text_model,
            transformer: transformer_model,
            null,
            stored_dtypes: HashMap::new(),
        })
    }

    /// A model initialised from weight files (safetensors or PyTorch `.bin`): the text
    /// encoder's, the transformer's, and the null embedding's (key `embeddings`). Every
    /// variable must be in its file with its shape, and every tensor of the files used.
    pub fn from_weights(
        text: (&ClipTextConfig, &Path),
        transformer: (&Transformer2DConfig, &Path),
        null: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        let mut model = Self::new(text.0, transformer.0, null.is_some(), device)?;
        let mut parts = vec![(TEXT_PREFIX, text.1), (TRANSFORMER_PREFIX, transformer.1)];
        if let Some(p) = null {
            parts.push(("null", p));
        }
        let vars = model.named_vars();
        for (prefix, path) in parts {
            let lead = format!("{prefix}.");
            load_strict(&vars, &lead, path, device, &mut model.stored_dtypes)?;
        }
        Ok(model)
    }

    /// The conditioning states `(B, L, C)`: normalised text states where `keep[b]`, the null
    /// embedding elsewhere (an error when a caption is dropped and the model has no null).
    pub fn condition(&self, ids: &Tensor, keep: &[bool]) -> Result<Tensor> {
        if keep.iter().all(|&k| k) {
            return condition_with_null(&self.text, None, ids, keep);
        }
        let null = self.null.as_ref().ok_or_else(|| {
            Error::InvalidSetting(
                "caption dropout needs a learned null embedding (the model has none)".into(),
            )
        })?;
        condition_with_null(&self.text, Some(null), ids, keep)
    }

    /// Copies of every variable, by name (a checkpoint's model part).
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.named_vars()
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_tensor().copy()?)))
            .collect()
    }

    /// Overwrites every variable from `tensors` (each must be there with its shape; other
    /// entries, e.g. training state, are ignored).
    pub fn load_tensors(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.named_vars() {
            let saved = tensors
                .get(&name)
                .ok_or_else(|| Error::State(format!("the saved model has no variable {name}")))?;
            set_checked(&name, &var, saved)?;
        }
        Ok(())
    }

    /// Overwrites the variables named in `tensors` (a part, e.g. the text encoder's; full
    /// names), each of which the model must have.
    pub fn load_part(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let vars: HashMap<String, Var> = self.named_vars().into_iter().collect();
        for (name, saved) in tensors {
            let var = vars
                .get(name)
                .ok_or_else(|| Error::State(format!("the model has no variable {name}")))?;
            set_checked(name, var, saved)?;
        }
        Ok(())
    }

    /// The variables as (name, var), sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    /// The trainable variables: all, or all but the text encoder's.
    pub fn trainable(&self, freeze_text_encoder: bool) -> Vec<(String, Var)> {
        let lead = format!("{TEXT_PREFIX}.");
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| !(freeze_text_encoder && n.starts_with(&lead)))
            .collect()
    }

    /// The variables under `prefix.` with the prefix removed, converted to `dtype`.
    pub fn part_as(&self, prefix: &str, dtype: DType) -> Result<HashMap<String, Tensor>> {
        let lead = format!("{prefix}.");
        self.named_vars()
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&lead).map(|s| (s.to_string(), v)))
            .map(|(key, v)| Ok((key, v.as_tensor().to_dtype(dtype)?)))
            .collect()
    }

    /// The variables under `prefix.` with the prefix removed, in their stored dtypes
    /// (f32 for a fresh model) — a part's checkpoint as its loader reads it.
    pub fn part(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        let lead = format!("{prefix}.");
        self.named_vars()
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&lead).map(|s| (s.to_string(), k.clone(), v)))
            .map(|(key, name, v)| {
                let dtype = self.stored_dtypes.get(&name).copied().unwrap_or(DType::F32);
                Ok((key, v.as_tensor().to_dtype(dtype)?))
            })
            .collect()
    }

    /// Writes the three parts in the diffusers layout under `root`:
    /// `text_encoder/model.safetensors`, `transformer/diffusion_pytorch_model.safetensors`,
    /// and `learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors`
    /// (key `embeddings`) when there is a null embedding.
    pub fn save_weights(&self, root: &Path) -> Result<()> {
        save_tensors_atomic(
            &root.join("text_encoder/model.safetensors"),
            &self.part(TEXT_PREFIX)?,
        )?;
        save_tensors_atomic(
            &root.join("transformer/diffusion_pytorch_model.safetensors"),
            &self.part(TRANSFORMER_PREFIX)?,
        )?;
        if self.null.is_some() {
            save_tensors_atomic(
                &root.join(
                    "learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors",
                ),
                &self.part("null")?,
            )?;
        }
        Ok(())
    }
}

/// Sets every variable of `vars` named `lead` + key from tensor `key` of the weight file
/// `path` (safetensors or PyTorch `.bin`), recording its stored dtype in `stored`: each must be
/// there with the variable's shape, and every tensor of the file must be used (strict both
/// ways).
pub(crate) fn load_strict(
    vars: &[(String, Var)],
    lead: &str,
    path: &Path,
    device: &Device,
    stored: &mut HashMap<String, DType>,
) -> Result<()> {
    let file = vq_nn::WeightFile::open(path).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mine: Vec<&(String, Var)> = vars.iter().filter(|(n, _)| n.starts_with(lead)).collect();
    for (name, var) in &mine {
        let key = &name[lead.len()..];
        let t = file.tensor(key, device).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            reason: format!("{key}: {e}"),
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Data {
                path: path.to_path_buf(),
                reason: format!(
                    "{key} has shape {:?}, the configuration implies {:?}",
                    t.dims(),
                    var.dims()
                ),
            });
        }
        stored.insert(name.clone(), t.dtype());
        var.set(&t.to_dtype(DType::F32)?)?;
    }
    let unused = file.keys().count().saturating_sub(mine.len());
    if unused > 0 {
        return Err(Error::Data {
            path: path.to_path_buf(),
            reason: format!(
                "{unused} tensor(s) the configuration does not describe (strict loading)"
            ),
        });
    }
    Ok(())
}

/// The variables of `varmap` as (name, var), sorted by name.
pub(crate) fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn text_error(e: clip_text::Error) -> Error {
    Error::InvalidSetting(format!("text encoder: {e}"))
}

fn var(varmap: &VarMap, name: &str) -> Var {
    varmap
        .data()
        .lock()
        .expect("varmap lock")
        .get(name)
        .cloned()
        .expect("registered variable")
}

/// `var = saved` (as the variable's dtype) after checking that the shapes agree.
fn set_checked(name: &str, var: &Var, saved: &Tensor) -> Result<()> {
    if saved.dims() != var.dims() {
        return Err(Error::State(format!(
            "{name}: saved shape {:?}, model {:?}",
            saved.dims(),
            var.dims()
        )));
    }
    Ok(var.set(&saved.to_dtype(var.dtype())?.to_device(var.device())?)?)
}

/// Normalised text states of `ids` `(B, L)` from `text`, with `null` `(L, C)` in place of the
/// rows where `!keep[b]` — the conditioning of every jointly trained model (VQ-Diffusion's
/// classifier-free training with a learned null, Improved VQ-Diffusion §3.1). Differentiable in
/// the text encoder and the null embedding. `null` may be `None` only when every row is kept.
pub fn condition_with_null(
    text: &ClipTextModel,
    null: Option<&Var>,
    ids: &Tensor,
    keep: &[bool],
) -> Result<Tensor> {
    let hidden = text.forward(ids).map_err(text_error)?;
    let states = l2_normalise_tokens(&hidden)?;
    if keep.iter().all(|&k| k) {
        return Ok(states);
    }
    let null = null
        .ok_or_else(|| Error::InvalidSetting("a dropped caption needs a null embedding".into()))?;
    let k = Tensor::from_vec(
        keep.iter()
            .map(|&k| f32::from(u8::from(k)))
            .collect::<Vec<_>>(),
        (keep.len(), 1, 1),
        states.device(),
    )?;
    let null = null.as_tensor().unsqueeze(0)?;
    Ok((states.broadcast_mul(&k)? + null.broadcast_mul(&(1.0 - &k)?)?)?)
}
