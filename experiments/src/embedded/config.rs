//! Every setting of the embedded model's training run, in one serde struct: the VQ-VAE and its
//! training, the token cache, the text encoder, the denoiser, the diffusion chain and the joint
//! training. [`EmbeddedConfig::full`] is the shipped model's recipe (sized for ~90 minutes on
//! the 2-core development CPU); [`EmbeddedConfig::quick`] is a tiny configuration that runs end to
//! end in well under a minute (CI smoke test). The run folder records the config it was started
//! with, and a resumed run must use the same one.

use clip_text::{Activation as ClipActivation, ClipTextConfig};
use discrete_diffusion::{LossConfig, MaskAndReplace, VqDiffusionSchedule};
use serde::{Deserialize, Serialize};
use vq_codebook::{DownBlockType, ReconstructionLoss, UpBlockType, VqModelConfig};
use vq_transformer::Transformer2DConfig;

/// VQ-VAE training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VqStage {
    /// The VQ-VAE architecture (32×32 → 8×8 needs three levels).
    pub model: VqModelConfig,
    /// Training images (shape-world train split, indices `0..images`).
    pub images: usize,
    /// Validation images for the PSNR / usage report.
    pub validation_images: usize,
    /// Optimisation steps.
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Reconstruction loss. Salience-weighted MSE: with plain MSE the decoder drew every object
    /// in the mean object colour (the oracle read 0 % of 500 validation reconstructions after
    /// 480 steps; 11.7 % with salience 20 after 300 steps of the smaller model, and the colours
    /// are right).
    pub reconstruction: ReconstructionLoss,
}

/// The forward chain: mask-and-replace, linear in the cumulative quantities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainSettings {
    /// `T`.
    pub num_timesteps: usize,
    /// Final mask probability `γ̄_T` (the paper's 0.9).
    pub gamma_bar_final: f64,
    /// Final replace mass `Kβ̄_T` (the paper's 0.1).
    pub k_beta_bar_final: f64,
}

impl ChainSettings {
    /// The diffusers scheduler constants of this chain over `codebook` real classes.
    pub fn schedule(&self, codebook: usize) -> discrete_diffusion::Result<VqDiffusionSchedule> {
        VqDiffusionSchedule::from_final(
            Some(codebook + 1),
            self.num_timesteps,
            self.gamma_bar_final,
            self.k_beta_bar_final,
        )
    }

    /// The chain itself (built from the exported scheduler constants, so training and the
    /// pipeline use the same tables).
    pub fn chain(&self, codebook: usize) -> discrete_diffusion::Result<MaskAndReplace> {
        MaskAndReplace::new(codebook, &self.schedule(codebook)?)
    }
}

/// Joint training of the text encoder, the denoiser and the null embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiserStage {
    /// Training examples encoded to tokens (shape-world train split, indices `0..examples`).
    pub examples: usize,
    /// Optimisation steps.
    pub steps: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak AdamW learning rate.
    pub learning_rate: f64,
    /// The learning rate decays (cosine) to this fraction of the peak.
    pub final_lr_fraction: f64,
    /// Linear warm-up steps from a fresh start.
    pub warmup_steps: u64,
    /// Linear re-warm-up after a resume. Unused since the trainer moved onto vq-train, whose
    /// checkpoints hold the AdamW moments (a resume is exact); kept so the recipe's configs and
    /// model card read as before.
    pub resume_warmup_steps: u64,
    /// Decoupled weight decay of the weight matrices (embeddings, norms and biases: none).
    pub weight_decay: f64,
    /// Global gradient-norm clip (`None`: no clipping).
    pub grad_clip: Option<f64>,
    /// Probability that a caption is replaced by the learned null embedding.
    pub caption_dropout: f64,
    /// Probability that a one-object caption leaves out some attributes ("a circle").
    pub partial_caption_rate: f64,
    /// Loss weights (VQ-Diffusion defaults).
    pub loss: LossConfig,
    /// Scale of the cross-attention projections that read the text states (`attn2.to_k`,
    /// `attn2.to_v` weights): their initialisation and their learning rate are multiplied by it.
    /// The text states are L2-normalised (unit norm, entries ≈ C^-½) while every other linear
    /// layer reads LayerNorm'ed inputs (entries ≈ 1), so at scale 1 the keys start √C too small
    /// and move √C too slowly: cross-attention stays near uniform over the 77 states (mostly
    /// padding), its output is the same at every image location, and position words never bind
    /// to locations. √C makes them learn at the rate of the image side.
    #[serde(default = "unit_scale")]
    pub context_projection_scale: f64,
}

fn unit_scale() -> f64 {
    1.0
}

/// The whole recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedConfig {
    /// Seed of every random choice (initialisation, batches, noise, captions).
    pub seed: u64,
    /// VQ-VAE stage.
    pub vq: VqStage,
    /// Text encoder architecture (real CLIP BPE vocabulary, small width).
    pub text: ClipTextConfig,
    /// Denoiser architecture (`num_vector_embeds` = codebook + 1, `sample_size` = 8).
    pub transformer: Transformer2DConfig,
    /// The forward chain.
    pub chain: ChainSettings,
    /// Joint training.
    pub denoiser: DenoiserStage,
    /// Pre-training of the text encoder before the joint training (absent: none).
    #[serde(default)]
    pub text_pretraining: Option<TextPretraining>,
    /// Write a denoiser checkpoint at least this often (seconds).
    pub checkpoint_seconds: u64,
}

fn vq_model(channels: [usize; 3], groups: usize, codebook: usize, embed: usize) -> VqModelConfig {
    VqModelConfig {
        block_out_channels: channels.to_vec(),
        down_block_types: vec![
            DownBlockType::DownEncoderBlock2D,
            DownBlockType::DownEncoderBlock2D,
            DownBlockType::DownEncoderBlock2D,
        ],
        up_block_types: vec![
            UpBlockType::UpDecoderBlock2D,
            UpBlockType::UpDecoderBlock2D,
            UpBlockType::UpDecoderBlock2D,
        ],
        layers_per_block: 1,
        norm_num_groups: groups,
        latent_channels: embed,
        vq_embed_dim: Some(embed),
        num_vq_embeddings: codebook,
        sample_size: 32,
        mid_block_add_attention: false,
        ..VqModelConfig::default()
    }
}

fn text_config(width: usize, layers: usize, heads: usize) -> ClipTextConfig {
    ClipTextConfig {
        hidden_size: width,
        intermediate_size: 4 * width,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        hidden_act: ClipActivation::QuickGelu,
        ..ClipTextConfig::vit_base_patch32()
    }
}

fn transformer_config(
    heads: usize,
    head_dim: usize,
    layers: usize,
    text_width: usize,
    codebook: usize,
    timesteps: usize,
) -> Transformer2DConfig {
    Transformer2DConfig {
        num_attention_heads: heads,
        attention_head_dim: head_dim,
        num_layers: layers,
        cross_attention_dim: Some(text_width),
        attention_bias: true,
        sample_size: Some(8),
        num_vector_embeds: Some(codebook + 1),
        activation_fn: "geglu-approximate".into(),
        num_embeds_ada_norm: Some(timesteps),
        ..Transformer2DConfig::default()
    }
}

impl EmbeddedConfig {
    /// The shipped model's recipe.
    pub fn full() -> Self {
        let codebook = 256;
        let text_width = 64;
        let timesteps = 100;
        Self {
            seed: 0,
            vq: VqStage {
                // [16, 32, 32] trains at 0.65 s/step against 1.3 for [32, 64, 64], and steps
                // matter more than width on flat-colour images.
                model: vq_model([16, 32, 32], 8, codebook, 16),
                images: 4000,
                validation_images: 500,
                steps: 1500,
                batch_size: 16,
                learning_rate: 2e-3,
                reconstruction: ReconstructionLoss::SalienceWeightedMse { salience: 20.0 },
            },
            text: text_config(text_width, 2, 4),
            transformer: transformer_config(4, 32, 4, text_width, codebook, timesteps),
            chain: ChainSettings {
                num_timesteps: timesteps,
                gamma_bar_final: 0.9,
                k_beta_bar_final: 0.1,
            },
            denoiser: DenoiserStage {
                examples: 20_000,
                steps: 4000,
                batch_size: 32,
                learning_rate: 1e-3,
                final_lr_fraction: 0.1,
                warmup_steps: 200,
                resume_warmup_steps: 50,
                weight_decay: 0.01,
                grad_clip: Some(1000.0),
                caption_dropout: 0.1,
                partial_caption_rate: 0.2,
                loss: LossConfig::default(),
                context_projection_scale: (text_width as f64).sqrt(),
            },
            text_pretraining: Some(TextPretraining {
                steps: 600,
                batch_size: 64,
                learning_rate: 2e-3,
            }),
            checkpoint_seconds: 180,
        }
    }

    /// A tiny configuration for smoke tests (seconds, not a usable model).
    pub fn quick() -> Self {
        let codebook = 32;
        let text_width = 16;
        let timesteps = 10;
        Self {
            seed: 0,
            vq: VqStage {
                model: vq_model([8, 16, 16], 4, codebook, 4),
                images: 64,
                validation_images: 16,
                steps: 6,
                batch_size: 8,
                learning_rate: 2e-3,
                reconstruction: ReconstructionLoss::SalienceWeightedMse { salience: 20.0 },
            },
            text: text_config(text_width, 1, 2),
            transformer: transformer_config(2, 8, 1, text_width, codebook, timesteps),
            chain: ChainSettings {
                num_timesteps: timesteps,
                gamma_bar_final: 0.9,
                k_beta_bar_final: 0.1,
            },
            denoiser: DenoiserStage {
                examples: 64,
                steps: 8,
                batch_size: 8,
                learning_rate: 1e-3,
                final_lr_fraction: 0.1,
                warmup_steps: 2,
                resume_warmup_steps: 2,
                weight_decay: 0.01,
                grad_clip: Some(1000.0),
                caption_dropout: 0.1,
                partial_caption_rate: 0.2,
                loss: LossConfig::default(),
                context_projection_scale: (text_width as f64).sqrt(),
            },
            text_pretraining: Some(TextPretraining {
                steps: 4,
                batch_size: 8,
                learning_rate: 2e-3,
            }),
            checkpoint_seconds: 1,
        }
    }

    /// Codebook size `K` (the denoiser predicts `K` classes and embeds `K + 1`).
    pub fn codebook(&self) -> usize {
        self.vq.model.num_vq_embeddings
    }
}

/// Settings of the text pre-training stage (`text_pretraining.rs`; 0 steps: skip it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPretraining {
    /// Optimisation steps.
    pub steps: u64,
    /// Captions per step.
    pub batch_size: usize,
    /// AdamW learning rate (constant).
    pub learning_rate: f64,
}
