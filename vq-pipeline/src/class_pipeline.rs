//! [`ClassConditionalPipeline`]: class-conditional generation with the original VQ-Diffusion's
//! ImageNet models (Gu et al. 2022 §4.3), from a folder written by `vqd convert` (this crate's
//! layout: `model_index.json` with `"_class_name": "VQDiffusionClassPipeline"`, `transformer/`
//! with a [`Condition2ImageTransformer`], a diffusers `vqvae/` and `scheduler/`, and optional
//! `class_names.json`).
//!
//! Same chain, samplers, truncation and classifier-free guidance as the text pipeline; the
//! condition is one class label per image, and guidance's unconditional pass uses the null
//! label (`num_labels`: the learned row of a 1001-row table, else the mean row — the
//! original's zero-shot null for `imagenet_pretrained.pth`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use discrete_diffusion::{
    MaskAndReplace, NoiseSource, StepEvent, Transition, VqDiffusionSchedule, initial_state,
    sample_with_known,
};
use vq_codebook::{VqModel, VqModelConfig};
use vq_transformer::{ClassCondition, Condition2ImageConfig, Condition2ImageTransformer};

use crate::error::{component, read_json};
use crate::original::{CLASS_NAMES_FILE, CLASS_PIPELINE};
use crate::pipeline::decode_token_grids;
use crate::{Error, Generation, GenerationOptions, LoadOptions, Result, Timings};

/// A loaded class-conditional model.
pub struct ClassConditionalPipeline {
    root: PathBuf,
    transformer: Condition2ImageTransformer,
    vqvae: VqModel,
    chain: MaskAndReplace,
    class_names: Vec<String>,
    device: candle_core::Device,
}

/// Whether `root` holds a class-conditional model (its `model_index.json` says so).
pub fn is_class_conditional_model(root: &Path) -> bool {
    read_json::<serde_json::Value>(&root.join("model_index.json"))
        .ok()
        .and_then(|v| v.get("_class_name")?.as_str().map(|s| s == CLASS_PIPELINE))
        .unwrap_or(false)
}

fn normalise(name: &str) -> String {
    name.trim()
        .to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl ClassConditionalPipeline {
    /// Loads the folder `root` (strictly: every weight used, shapes checked).
    pub fn from_pretrained(root: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let root = root.as_ref();
        if !is_class_conditional_model(root) {
            return Err(Error::InvalidModel {
                folder: root.to_path_buf(),
                problems: vec![format!(
                    "model_index.json does not name {CLASS_PIPELINE}: not a class-conditional model"
                )],
            });
        }
        if options.int8_transformer {
            return Err(Error::InvalidOption(format!(
                "{}: int8_transformer is not available for class-conditional models (only for \
                 the text-conditional Transformer2DModel)",
                root.display()
            )));
        }
        let device = options.device.clone();
        let transformer_dir = root.join("transformer");
        let transformer =
            Condition2ImageTransformer::from_pretrained(&transformer_dir, options.dtype, &device)
                .map_err(component("transformer"))?;
        let schedule =
            VqDiffusionSchedule::from_file(root.join("scheduler/scheduler_config.json"))?;
        let chain = MaskAndReplace::from_scheduler_config(&schedule)?;
        let config = transformer.config();
        if chain.num_classes() != config.num_classes() {
            return Err(Error::InvalidModel {
                folder: root.to_path_buf(),
                problems: vec![format!(
                    "scheduler num_vec_classes {} ≠ transformer num_vector_embeds {}",
                    chain.num_classes() + 1,
                    config.num_vector_embeds
                )],
            });
        }
        let vqvae_dir = root.join("vqvae");
        let vqvae_config =
            VqModelConfig::from_file(vqvae_dir.join("config.json")).map_err(component("vqvae"))?;
        let weights = vq_nn::WeightNames::DIFFUSERS.find(&vqvae_dir, options.variant)?;
        let vqvae = VqModel::from_weights(&vqvae_config, weights, options.dtype, &device)
            .map_err(component("vqvae"))?;
        if vqvae_config.num_vq_embeddings != config.num_classes() {
            return Err(Error::InvalidModel {
                folder: root.to_path_buf(),
                problems: vec![format!(
                    "the VQ-VAE has {} codes, the transformer predicts {} classes",
                    vqvae_config.num_vq_embeddings,
                    config.num_classes()
                )],
            });
        }
        let names_path = root.join(CLASS_NAMES_FILE);
        let class_names = if names_path.is_file() {
            let names: Vec<String> = read_json(&names_path)?;
            if names.len() != config.num_labels {
                return Err(Error::InvalidFile {
                    path: names_path,
                    reason: format!(
                        "{} names for a model of {} classes",
                        names.len(),
                        config.num_labels
                    ),
                });
            }
            names
        } else {
            Vec::new()
        };
        Ok(Self {
            root: root.to_path_buf(),
            transformer,
            vqvae,
            chain,
            class_names,
            device,
        })
    }

    /// The folder it was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The denoiser's configuration.
    pub fn config(&self) -> &Condition2ImageConfig {
        self.transformer.config()
    }

    /// The class names (label order), empty when the folder has none.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// A label from a number (`"207"`), `"none"` (the null label: unconditional), or a class
    /// name (`"golden retriever"`, `"golden_retriever"`; case and separators ignored).
    pub fn parse_class(&self, text: &str) -> Result<usize> {
        parse_class_label(text, &self.class_names, self.config().num_labels)
    }

    /// Tokens per image.
    pub fn num_tokens(&self) -> usize {
        self.config().num_tokens()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &candle_core::Device {
        &self.device
    }

    /// The model's (square) image size in pixels.
    pub fn image_size(&self) -> u32 {
        (self.config().sample_size * self.vqvae.config().downsampling_factor()) as u32
    }

    /// Encodes an image already at [`ClassConditionalPipeline::image_size`] into its `(1, N)`
    /// tokens.
    pub fn encode_image(&self, image: &image::RgbImage) -> Result<candle_core::Tensor> {
        let side = self.image_size();
        crate::encode_sized_image(&self.vqvae, image, (side, side), &self.device)
    }

    /// The ELBO of token grids `x0` `(B, N)` with one class label each (the null label for
    /// an unconditional model), in bits per token (VQ-Diffusion eq. 5 summed over `t`).
    pub fn elbo(
        &self,
        labels: &[usize],
        x0: &candle_core::Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<discrete_diffusion::ElboReport> {
        if labels.len() != x0.dim(0)? {
            return Err(Error::InvalidOption(format!(
                "elbo: {} token rows but {} class labels",
                x0.dim(0)?,
                labels.len()
            )));
        }
        let condition = ClassCondition {
            labels: labels.to_vec(),
            scale: 1.0,
        };
        Ok(discrete_diffusion::elbo_bits_per_token(
            &self.chain,
            &self.transformer,
            &condition,
            x0,
            noise,
        )?)
    }

    /// Generates `options.num_images_per_prompt` images for each of `labels`, with the
    /// sampler, truncation, guidance and steps of `options` (its prompts only name the
    /// images).
    pub fn generate(
        &self,
        labels: &[usize],
        options: &GenerationOptions,
        noise: &mut dyn NoiseSource,
        mut on_step: impl FnMut(&StepEvent) -> Result<()>,
    ) -> Result<Generation> {
        let big_t = self.chain.num_timesteps();
        options.validate(big_t)?;
        if labels.is_empty() || labels.len() != options.prompts.len() {
            return Err(Error::InvalidOption(format!(
                "{} class labels for {} image names",
                labels.len(),
                options.prompts.len()
            )));
        }
        let n = options.num_images_per_prompt;
        let repeated: Vec<usize> = labels
            .iter()
            .flat_map(|&l| std::iter::repeat_n(l, n))
            .collect();
        let b = repeated.len();
        let start = Instant::now();
        let config = options.sampler_config(big_t, self.num_tokens());
        let init = initial_state(&self.chain, b, self.num_tokens(), noise, &self.device)?;
        let condition = ClassCondition {
            labels: repeated,
            scale: options.guidance_scale.max(1.0),
        };
        let mut calls = 0;
        let mut step_error = None;
        let sampled = sample_with_known(
            &self.chain,
            &self.transformer,
            &condition,
            &init,
            &config,
            None,
            noise,
            |e: &StepEvent| {
                calls += 1;
                if let Err(err) = on_step(e) {
                    step_error = Some(err);
                    return Err(discrete_diffusion::Error::Cancelled);
                }
                Ok(())
            },
        );
        if let Some(err) = step_error {
            return Err(err);
        }
        let tokens = sampled?;
        let denoise = start.elapsed();
        let start = Instant::now();
        let side = self.config().sample_size;
        let (decoded, images) = decode_token_grids(&self.vqvae, &tokens, side, side)?;
        Ok(Generation {
            images,
            decoded,
            tokens,
            image_prompts: options.image_prompts(),
            warnings: Vec::new(),
            model_calls: calls,
            timings: Timings {
                text: Duration::ZERO,
                denoise,
                decode: start.elapsed(),
            },
            seed: noise.seed(),
            edit: None,
        })
    }
}

/// [`ClassConditionalPipeline::parse_class`] for a model of `labels` classes named `names`
/// (possibly none).
pub fn parse_class_label(text: &str, names: &[String], labels: usize) -> Result<usize> {
    if let Ok(n) = text.trim().parse::<usize>() {
        return if n < labels {
            Ok(n)
        } else {
            Err(Error::InvalidOption(format!(
                "class {n} is out of range: the model has classes 0..{labels} (use \"none\" \
                 for no class)"
            )))
        };
    }
    let wanted = normalise(text);
    if wanted == "none" {
        return Ok(labels);
    }
    if let Some(i) = names.iter().position(|n| normalise(n) == wanted) {
        return Ok(i);
    }
    let close: Vec<&str> = names
        .iter()
        .filter(|n| normalise(n).contains(&wanted))
        .take(5)
        .map(String::as_str)
        .collect();
    Err(Error::InvalidOption(if names.is_empty() {
        format!("class {text:?}: this model has no class names; give a number 0..{labels}")
    } else if close.is_empty() {
        format!("class {text:?} is not one of the model's {labels} class names")
    } else {
        format!("class {text:?} is not a class name; did you mean one of {close:?}?")
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_class_label;

    #[test]
    fn classes_are_found_by_number_name_or_none() {
        let names = crate::original::imagenet_class_names();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[207], "golden_retriever");
        assert_eq!(parse_class_label("207", &names, 1000).unwrap(), 207);
        assert_eq!(
            parse_class_label("Golden Retriever", &names, 1000).unwrap(),
            207
        );
        assert_eq!(
            parse_class_label("golden_retriever", &names, 1000).unwrap(),
            207
        );
        assert_eq!(parse_class_label("none", &names, 1000).unwrap(), 1000);
        let e = parse_class_label("retriever", &names, 1000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did you mean") && e.contains("golden_retriever"),
            "{e}"
        );
        let e = parse_class_label("1000", &names, 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = parse_class_label("zebra crossing", &names, 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not one of the model's 1000 class names"), "{e}");
    }
}
