//! [`convert_original`]: an original VQ-Diffusion training checkpoint (`*.pth` of
//! microsoft/VQ-Diffusion) → a diffusers-layout pipeline folder that [`crate::VqDiffusionPipeline`]
//! (and diffusers) load (docs/original-checkpoints.md).
//!
//! What it reads, lazily (a multi-gigabyte checkpoint costs only the tensors converted; the
//! optimiser moments are indexed, never read):
//!
//! 1. the `model` state dict, overlaid — as the original inference does — by every key of the
//!    `ema` state dict (the EMA copy of the `DiffusionTransformer`, denoiser and CLIP) when
//!    present and [`ConvertOptions::use_ema`] is on;
//! 2. the denoiser (`transformer.transformer.`), the CLIP text tower
//!    (`transformer.condition_emb.`), the learned null text embedding
//!    (`transformer.empty_text_embed`, float64) when present — its presence, not a config file,
//!    decides learned versus empty-prompt guidance;
//! 3. the VQ-GAN from [`ConvertOptions::vqvae`] (a taming `state_dict`, an ITHQ `model`, or a
//!    Lightning file with `first_stage_model.`), or else from the checkpoint's own
//!    `content_codec.enc` / `.dec` halves; its codebook is gathered through the code remap
//!    when it has more codes than the transformer has classes;
//! 4. the schedule buffers, checked against the `alpha1` schedule for the file's `K` and `T`.
//!
//! The folder is written to a temporary sibling and renamed into place, so a failed conversion
//! leaves nothing behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use discrete_diffusion::{LogTables, MaskAndReplace, VqDiffusionSchedule};
use serde_json::{Value, json};
use vq_nn::WeightFile;

use super::clip_keys;
use super::code_remap::{CodeRemap, RemapChoice};
use super::original_config::OriginalConfig;
use super::state_dict::StateDict;
use super::taming_keys::{self, OriginalVqGan};
use super::transformer_keys::{self, OriginalFamily, OriginalTransformer};
use crate::error::io;
use crate::model_index::{pipeline_model_index, with_diffusers_class};
use crate::{Error, NULL_EMBEDDING, Result};
use vq_transformer::Condition2ImageConfig;

/// Options of [`convert_original`].
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// A separate VQ-GAN file; `None` uses the checkpoint's own `content_codec`.
    pub vqvae: Option<PathBuf>,
    /// The code-remap table (only used when the codebook has more codes than the transformer
    /// has classes).
    pub remap: RemapChoice,
    /// A folder with the CLIP BPE files `vocab.json` and `merges.txt`; `None` takes them from
    /// the embedded model (the same vocabulary), when this build has it.
    pub tokenizer: Option<PathBuf>,
    /// Storage dtype of the transformer and text-encoder weights (F32, F16 or BF16); the VQ-VAE
    /// and the null embedding stay f32.
    pub dtype: DType,
    /// Prefer the EMA weights, as the original inference does.
    pub use_ema: bool,
    /// The original YAML config the checkpoint was trained with (optional): supplies the head
    /// counts and the token grid, and every size it states is checked against the checkpoint.
    pub config: Option<PathBuf>,
    /// Attention heads of the denoiser (not stored in the file); `None` = the config's
    /// `n_head`, else 16 (every release).
    pub heads: Option<usize>,
    /// Attention heads of the text encoder; `None` = the config's CLIP model, else OpenAI's
    /// width / 64 (8 for ViT-B/32).
    pub text_heads: Option<usize>,
    /// GroupNorm groups of the VQ-GAN (not stored; 32 in taming).
    pub vq_norm_groups: usize,
    /// Image side the class-conditional models were trained at (not stored): with the VQ-GAN's
    /// downsampling it gives their token grid; `None` = the config's `token_shape`, else 256
    /// (ImageNet).
    pub image_size: Option<usize>,
    /// Class labels of a class-conditional model; `None` = 1000 (ImageNet) for a 1001-row class
    /// table (learned null row), else the number of rows (mean-row null).
    pub class_labels: Option<usize>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            vqvae: None,
            remap: RemapChoice::Released,
            tokenizer: None,
            dtype: DType::F32,
            use_ema: true,
            config: None,
            heads: None,
            text_heads: None,
            vq_norm_groups: 32,
            image_size: None,
            class_labels: None,
        }
    }
}

/// What [`convert_original`] found and wrote.
#[derive(Debug, Clone)]
pub struct ConversionReport {
    /// The denoiser's hyper-parameters.
    pub transformer: OriginalTransformer,
    /// Whether the checkpoint has a learned null text embedding.
    pub learned_null: bool,
    /// Whether EMA weights were used (present and asked for).
    pub used_ema: bool,
    /// The VQ-GAN.
    pub vqgan: OriginalVqGan,
    /// The file the VQ-GAN came from.
    pub vqgan_file: PathBuf,
    /// The code remap applied, if any.
    pub remap: Option<CodeRemap>,
    /// Whether the checkpoint's schedule buffers were checked (`false`: it has none).
    pub schedule_checked: bool,
    /// Number of tensors written.
    pub tensors_written: usize,
}

/// The tokenizer settings of the original text models (context 77, padding with id 0 = `!`),
/// in transformers' slow-tokenizer files, with clip-text's marker for the original's own
/// tokenization (`clip_text::TOKENIZATION_KEY`: lower-case, ftfy, `html.unescape` twice, and
/// an over-long prompt keeps its end-of-text token).
const TOKENIZER_CONFIG: &str = r#"{
  "add_prefix_space": false,
  "bos_token": {"content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
  "do_lower_case": true,
  "eos_token": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
  "errors": "replace",
  "model_max_length": 77,
  "pad_token": "!",
  "tokenizer_class": "CLIPTokenizer",
  "vq_diffusion_tokenization": "original",
  "unk_token": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false}
}
"#;
const SPECIAL_TOKENS_MAP: &str = r#"{
  "bos_token": {"content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
  "eos_token": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
  "pad_token": "!",
  "unk_token": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false}
}
"#;

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The `model` state dict of an original training checkpoint, EMA-overlaid when asked.
fn model_state<'f>(file: &'f WeightFile, use_ema: bool) -> Result<(StateDict<'f>, bool)> {
    let mut model = StateDict::under(file, "model.");
    if model.is_empty() {
        let first: Vec<&str> = file.keys().take(3).collect();
        let hint = if file.keys().any(|k| k.starts_with("state_dict.")) {
            "; this looks like a VQ-GAN (taming) file: pass it as the VQ-VAE, not as the checkpoint"
        } else if first == [""] {
            "; it is a bare tensor (a code-remap table?)"
        } else {
            ""
        };
        return Err(invalid(
            file.path(),
            format!(
                "not an original VQ-Diffusion training checkpoint: it has no `model` state dict \
                 (its first keys: {first:?}){hint}"
            ),
        ));
    }
    let ema = StateDict::under(file, "ema.");
    let used_ema = use_ema && !ema.is_empty();
    if used_ema {
        model.overlay(&ema, "transformer.");
    }
    Ok((model, used_ema))
}

/// The VQ-GAN state dict in taming names: the separate file's (`state_dict`, `model` or bare;
/// Lightning's `first_stage_model.` prefix stripped; `loss.*` dropped), or the checkpoint's
/// codec halves.
fn vqgan_state<'f>(
    separate: Option<&'f WeightFile>,
    model: &StateDict<'f>,
    checkpoint: &Path,
) -> Result<StateDict<'f>> {
    if let Some(file) = separate {
        let mut sd = if file.keys().any(|k| k.starts_with("state_dict.")) {
            StateDict::under(file, "state_dict.")
        } else if file.keys().any(|k| k.starts_with("model.")) {
            StateDict::under(file, "model.")
        } else {
            StateDict::under(file, "")
        };
        if sd.keys().any(|k| k.starts_with("first_stage_model.")) {
            sd = sd.sub("first_stage_model.");
        } else {
            sd.retain(|k| !k.starts_with("loss."));
        }
        return Ok(sd);
    }
    let codec = model.sub("content_codec.");
    if codec.is_empty() {
        return Err(invalid(
            checkpoint,
            "the checkpoint holds no VQ-GAN (no content_codec.* keys): pass the VQ-VAE file",
        ));
    }
    let mut sd = codec.sub("enc.");
    sd.retain(|k| !k.starts_with("decoder.") && !k.starts_with("post_quant_conv."));
    let mut dec = codec.sub("dec.");
    dec.retain(|k| k.starts_with("decoder.") || k.starts_with("post_quant_conv."));
    sd.overlay(&dec, "");
    Ok(sd)
}

/// Compares the checkpoint's schedule buffers with the `alpha1` schedule for `K`, `T`.
fn check_schedule(model: &StateDict<'_>, classes: usize, steps: usize) -> Result<bool> {
    let sd = model.sub("transformer.");
    if !sd.contains("log_cumprod_ct") {
        return Ok(false);
    }
    let tables = LogTables::new(&MaskAndReplace::released(classes, steps)?);
    let expected: [(&str, &[f32]); 6] = [
        ("log_at", &tables.log_at),
        ("log_bt", &tables.log_bt),
        ("log_ct", &tables.log_ct),
        ("log_cumprod_at", &tables.log_cumprod_at),
        ("log_cumprod_bt", &tables.log_cumprod_bt),
        ("log_cumprod_ct", &tables.log_cumprod_ct),
    ];
    for (key, want) in expected {
        if !sd.contains(key) {
            continue;
        }
        let got: Vec<f32> = sd.tensor(key)?.flatten_all()?.to_vec1()?;
        let close = |a: f32, b: f32| {
            (a.is_infinite() && a == b) || (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
        };
        if got.len() != want.len() || got.iter().zip(want).any(|(&a, &b)| !close(a, b)) {
            return Err(sd.error(format!(
                "transformer.{key} does not match the released `alpha1` schedule for {classes} \
                 classes and {steps} steps (got {:?}…, expected {:?}…): this checkpoint uses \
                 a schedule a diffusers scheduler config cannot describe",
                &got[..got.len().min(3)],
                &want[..want.len().min(3)]
            )));
        }
    }
    Ok(true)
}

fn save(tensors: Vec<(String, Tensor)>, dtype: DType, path: &Path) -> Result<usize> {
    let n = tensors.len();
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(dtype)?)))
        .collect::<Result<_>>()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    candle_core::safetensors::save(&map, path)?;
    Ok(n)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise") + "\n";
    std::fs::write(path, text).map_err(io(path))
}

/// `vocab.json` and `merges.txt` of the CLIP BPE.
fn tokenizer_files(source: Option<&Path>) -> Result<[(String, Vec<u8>); 2]> {
    let names = ["vocab.json", "merges.txt"];
    match source {
        Some(dir) => {
            let read = |name: &str| {
                let path = dir.join(name);
                std::fs::read(&path).map_err(io(&path))
            };
            Ok([
                (names[0].into(), read(names[0])?),
                (names[1].into(), read(names[1])?),
            ])
        }
        None => {
            let find = |name: &str| {
                crate::embedded_model::EMBEDDED_FILES
                    .iter()
                    .find(|(path, _)| *path == format!("tokenizer/{name}"))
                    .map(|(_, bytes)| bytes.to_vec())
            };
            match (find(names[0]), find(names[1])) {
                (Some(vocab), Some(merges)) => {
                    Ok([(names[0].into(), vocab), (names[1].into(), merges)])
                }
                _ => Err(Error::InvalidOption(
                    "this build has no embedded model to take the CLIP vocabulary from: pass a \
                     tokenizer folder with vocab.json and merges.txt (e.g. the tokenizer/ of \
                     any diffusers VQ-Diffusion model)"
                        .into(),
                )),
            }
        }
    }
}

/// The head count of every released denoiser.
const DEFAULT_HEADS: usize = 16;
/// The image side of every released model.
const DEFAULT_IMAGE_SIZE: usize = 256;

/// What the denoiser family adds to the folder.
enum Denoiser {
    Text {
        config: vq_transformer::Transformer2DConfig,
        text_config: clip_text::ClipTextConfig,
        learned_null: bool,
    },
    Class(Condition2ImageConfig),
}

/// The text family's configs, after checking that the CLIP tower and the null embedding fit.
fn text_denoiser(
    model: &StateDict<'_>,
    denoiser: &StateDict<'_>,
    arch: &OriginalTransformer,
    options: &ConvertOptions,
) -> Result<Denoiser> {
    let config = arch.diffusers_config(options.heads.unwrap_or(DEFAULT_HEADS), denoiser)?;
    let clip = model.sub(CLIP_PREFIX);
    if clip.is_empty() {
        return Err(model.error(
            "a text model without its CLIP text tower (no transformer.condition_emb.* keys)",
        ));
    }
    let text_config = clip_keys::text_config(&clip, options.text_heads)?;
    if arch.condition_width != Some(text_config.hidden_size) {
        return Err(model.error(format!(
            "the denoiser attends to {:?}-wide text states, the CLIP tower is {} wide",
            arch.condition_width, text_config.hidden_size
        )));
    }
    let learned_null = model.contains(NULL_KEY);
    if learned_null {
        let shape = model.shape(NULL_KEY)?;
        let want = [text_config.max_position_embeddings, text_config.hidden_size];
        if shape != want {
            return Err(model.error(format!(
                "{}: shape {shape:?}, expected {want:?} (text positions × width)",
                model.stored_name(NULL_KEY)
            )));
        }
    }
    Ok(Denoiser::Text {
        config,
        text_config,
        learned_null,
    })
}

/// The class family's config: ImageNet's 1000 labels for a 1000- or 1001-row class table
/// unless [`ConvertOptions::class_labels`] says otherwise.
fn class_denoiser(
    denoiser: &StateDict<'_>,
    arch: &OriginalTransformer,
    options: &ConvertOptions,
    grid: usize,
) -> Result<Denoiser> {
    let rows = denoiser.dim("blocks.0.ln2.emb.weight", 0)?;
    let labels = options
        .class_labels
        .unwrap_or(if rows == 1001 { 1000 } else { rows });
    if !arch.ffn_hidden.is_multiple_of(arch.width) {
        return Err(denoiser.error(format!(
            "blocks.0.mlp.conv1.weight has {} output channels, not a multiple of the width {}",
            arch.ffn_hidden, arch.width
        )));
    }
    let config = Condition2ImageConfig {
        num_layers: arch.layers,
        width: arch.width,
        num_attention_heads: options.heads.unwrap_or(DEFAULT_HEADS),
        num_vector_embeds: arch.classes + 1,
        num_embeds_ada_norm: arch.timesteps,
        num_labels: labels,
        class_table_rows: rows,
        position_table: [arch.position_rows.0, arch.position_rows.1],
        sample_size: grid,
        mlp_hidden_times: arch.ffn_hidden / arch.width,
        norm_eps: 1e-5,
        unknown: Default::default(),
    };
    config
        .validate()
        .map_err(|e| denoiser.error(format!("{e} (class labels: pass their number)")))?;
    Ok(Denoiser::Class(config))
}

const CLIP_PREFIX: &str = "transformer.condition_emb.";
const NULL_KEY: &str = "transformer.empty_text_embed";

/// ImageNet's class names, in label order (`imagenet_class_index.json` of the release).
pub(crate) fn imagenet_class_names() -> Vec<String> {
    let index: std::collections::BTreeMap<usize, (String, String)> = serde_json::from_str(
        include_str!("../../data/original/imagenet_class_index.json"),
    )
    .expect("the shipped class index parses");
    index.into_values().map(|(_, name)| name).collect()
}

/// Converts the original checkpoint `checkpoint` into a model folder `out` (which must not
/// exist yet): the diffusers layout for text models, this crate's class-conditional layout
/// (docs/original-checkpoints.md) for the ImageNet models.
pub fn convert_original(
    checkpoint: &Path,
    out: &Path,
    options: &ConvertOptions,
) -> Result<ConversionReport> {
    if !matches!(options.dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(Error::InvalidOption(format!(
            "dtype {:?}: the converter writes f32, f16 or bf16",
            options.dtype
        )));
    }
    if out.exists() {
        return Err(Error::InvalidOption(format!(
            "{} already exists: choose a new output folder",
            out.display()
        )));
    }
    let file = WeightFile::open(checkpoint)?;
    let (model, used_ema) = model_state(&file, options.use_ema)?;

    let denoiser = model.sub("transformer.transformer.");
    if denoiser.is_empty() {
        return Err(invalid(
            checkpoint,
            "no denoiser in its `model` state dict (no transformer.transformer.* keys)",
        ));
    }
    let arch = OriginalTransformer::infer(&denoiser)?;
    let schedule_checked = check_schedule(&model, arch.classes, arch.timesteps)?;
    let original_config = options
        .config
        .as_deref()
        .map(OriginalConfig::from_file)
        .transpose()?;
    let mut options = options.clone();
    if let Some(c) = &original_config {
        c.check("n_layer", c.layers, arch.layers)?;
        c.check("n_embd", c.width, arch.width)?;
        c.check("content_emb_config num_embed", c.classes, arch.classes)?;
        c.check("diffusion_step", c.timesteps, arch.timesteps)?;
        if arch.family == OriginalFamily::Class {
            // `imagenet_learnable.pth` is built from `configs/imagenet.yaml` (1000) plus the
            // inference flag `imagenet_cf`, which adds the learned null row.
            let rows = denoiser.dim("blocks.0.ln2.emb.weight", 0)?;
            let stated = c.class_number.map(|n| if n + 1 == rows { rows } else { n });
            c.check("class_number", stated, rows)?;
        }
        options.heads = options.heads.or(c.heads);
        options.text_heads = options.text_heads.or_else(|| c.text_heads());
    }

    let vq_file = options.vqvae.as_deref().map(WeightFile::open).transpose()?;
    let vq = vqgan_state(vq_file.as_ref(), &model, checkpoint)?;
    let vqgan = OriginalVqGan::infer(&vq)?;
    let vqgan_file = vq.path().to_path_buf();
    let plan = match arch.family {
        OriginalFamily::Text => text_denoiser(&model, &denoiser, &arch, &options)?,
        OriginalFamily::Class => {
            let down = vqgan.levels.saturating_sub(1);
            let grid = match (options.image_size, &original_config) {
                (Some(size), _) => size >> down,
                (None, Some(c)) if c.grid.is_some() => c.grid.unwrap_or_default(),
                _ => DEFAULT_IMAGE_SIZE >> down,
            };
            class_denoiser(&denoiser, &arch, &options, grid)?
        }
        OriginalFamily::Unconditional => {
            return Err(denoiser.error(
                "an unconditional denoiser (UnCondition2ImageTransformer): none was released \
                 and this importer does not convert it",
            ));
        }
    };
    let grid = match &plan {
        Denoiser::Text { .. } => arch.position_rows.0,
        Denoiser::Class(c) => c.sample_size,
    };

    let staging = out.with_file_name(format!(
        ".{}.partial-{}",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "converted".into()),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| {
        let codebook = vq.tensor(vqgan.quantizer.codebook_key())?;
        let remap = if vqgan.codebook_rows == arch.classes {
            None
        } else {
            Some(match &options.remap {
                RemapChoice::File(path) => CodeRemap::from_file(path, arch.classes)?,
                RemapChoice::Released => {
                    CodeRemap::released(vqgan.codebook_rows, arch.classes, &staging)?.ok_or_else(
                        || {
                            Error::InvalidOption(format!(
                                "the VQ-GAN ({}) has {} codes and the transformer predicts {} \
                                 classes, and no shipped code-remap table matches: pass the \
                                 model's full_to_quantize table",
                                vqgan_file.display(),
                                vqgan.codebook_rows,
                                arch.classes
                            ))
                        },
                    )?
                }
            })
        };
        let codebook = match &remap {
            Some(r) => r.gather(&codebook)?,
            None => codebook,
        };
        let vq_config = vqgan.diffusers_config(&vq, arch.classes, options.vq_norm_groups, grid)?;
        let mut vq_tensors = taming_keys::diffusers_tensors(&vq, vqgan.levels)?;
        vq_tensors.push(("quantize.embedding.weight".into(), codebook));
        let mut written = save(
            vq_tensors,
            DType::F32,
            &staging.join("vqvae/diffusion_pytorch_model.safetensors"),
        )?;
        write_json(
            &staging.join("vqvae/config.json"),
            &with_diffusers_class(&vq_config, "VQModel"),
        )?;
        let schedule = VqDiffusionSchedule {
            num_vec_classes: Some(arch.classes + 1),
            ..VqDiffusionSchedule::released(arch.timesteps)
        };
        write_json(
            &staging.join("scheduler/scheduler_config.json"),
            &with_diffusers_class(&schedule, "VQDiffusionScheduler"),
        )?;
        written += match &plan {
            Denoiser::Text {
                config,
                text_config,
                learned_null,
            } => write_text_model(
                &staging,
                &model,
                &denoiser,
                config,
                text_config,
                *learned_null,
                &options,
            )?,
            Denoiser::Class(config) => {
                write_class_model(&staging, &denoiser, config, options.dtype)?
            }
        };
        Ok((remap, written))
    })();
    match result {
        Ok((remap, tensors_written)) => {
            std::fs::rename(&staging, out).map_err(io(out))?;
            Ok(ConversionReport {
                transformer: arch,
                learned_null: match &plan {
                    Denoiser::Text { learned_null, .. } => *learned_null,
                    Denoiser::Class(c) => c.has_learned_null(),
                },
                used_ema,
                vqgan,
                vqgan_file,
                remap,
                schedule_checked,
                tensors_written,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// The text family's transformer, text encoder, tokenizer, null embedding and model index.
fn write_text_model(
    staging: &Path,
    model: &StateDict<'_>,
    denoiser: &StateDict<'_>,
    config: &vq_transformer::Transformer2DConfig,
    text_config: &clip_text::ClipTextConfig,
    learned_null: bool,
    options: &ConvertOptions,
) -> Result<usize> {
    let mut written = save(
        transformer_keys::diffusers_tensors(denoiser)?,
        options.dtype,
        &staging.join("transformer/diffusion_pytorch_model.safetensors"),
    )?;
    write_json(
        &staging.join("transformer/config.json"),
        &with_diffusers_class(config, "Transformer2DModel"),
    )?;
    written += save(
        clip_keys::hf_tensors(&model.sub(CLIP_PREFIX))?,
        options.dtype,
        &staging.join("text_encoder/model.safetensors"),
    )?;
    let mut text = serde_json::to_value(text_config).expect("config serialises");
    if let Value::Object(map) = &mut text {
        map.insert("architectures".into(), json!(["CLIPTextModel"]));
        map.insert("model_type".into(), "clip_text_model".into());
        map.insert("bos_token_id".into(), 49406.into());
        map.insert("eos_token_id".into(), 49407.into());
        map.insert("pad_token_id".into(), 1.into());
        map.insert("projection_dim".into(), text_config.hidden_size.into());
    }
    write_json(&staging.join("text_encoder/config.json"), &text)?;

    let null_dir = staging.join(NULL_EMBEDDING);
    let (null_config, null_tensor) = if learned_null {
        (
            json!({"learnable": true, "hidden_size": text_config.hidden_size,
                   "length": text_config.max_position_embeddings}),
            model.tensor(NULL_KEY)?,
        )
    } else {
        (
            json!({"learnable": false, "hidden_size": null, "length": null}),
            Tensor::zeros(0, DType::F32, &candle_core::Device::Cpu)?,
        )
    };
    written += save(
        vec![("embeddings".into(), null_tensor)],
        DType::F32,
        &null_dir.join("diffusion_pytorch_model.safetensors"),
    )?;
    write_json(
        &null_dir.join("config.json"),
        &with_diffusers_class(&null_config, "LearnedClassifierFreeSamplingEmbeddings"),
    )?;

    let tokenizer_dir = staging.join("tokenizer");
    std::fs::create_dir_all(&tokenizer_dir).map_err(io(&tokenizer_dir))?;
    for (name, bytes) in tokenizer_files(options.tokenizer.as_deref())? {
        let path = tokenizer_dir.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    for (name, text) in [
        ("tokenizer_config.json", TOKENIZER_CONFIG),
        ("special_tokens_map.json", SPECIAL_TOKENS_MAP),
    ] {
        let path = tokenizer_dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let vocab: serde_json::Map<String, Value> =
        crate::error::read_json(&tokenizer_dir.join("vocab.json"))?;
    if vocab.len() != text_config.vocab_size {
        return Err(Error::InvalidOption(format!(
            "the tokenizer's vocab.json has {} entries, the checkpoint's CLIP token table {} rows",
            vocab.len(),
            text_config.vocab_size
        )));
    }
    write_json(&staging.join("model_index.json"), &pipeline_model_index())?;
    Ok(written)
}

/// The class family's transformer (original key names), class names and model index.
fn write_class_model(
    staging: &Path,
    denoiser: &StateDict<'_>,
    config: &Condition2ImageConfig,
    dtype: DType,
) -> Result<usize> {
    let tensors = denoiser
        .keys()
        .map(|k| Ok((k.to_string(), denoiser.tensor(k)?)))
        .collect::<Result<Vec<_>>>()?;
    let written = save(
        tensors,
        dtype,
        &staging.join("transformer/diffusion_pytorch_model.safetensors"),
    )?;
    write_json(
        &staging.join("transformer/config.json"),
        &with_diffusers_class(config, config.class_name()),
    )?;
    if config.num_labels == 1000 {
        write_json(
            &staging.join(CLASS_NAMES_FILE),
            &json!(imagenet_class_names()),
        )?;
    }
    write_json(
        &staging.join("model_index.json"),
        &vq_nn::class_pipeline_model_index(config.class_name()),
    )?;
    Ok(written)
}

pub use vq_nn::{CLASS_NAMES_FILE, CLASS_PIPELINE};
/// `_class_name` of a class-conditional model's transformer.
pub const CLASS_TRANSFORMER: &str = vq_transformer::CLASS_CONDITIONAL_CLASS_NAME;
