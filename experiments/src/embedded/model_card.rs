//! The model card (`README.md` in the exported folder): data, architecture and sizes, the
//! training recipe and the command that reproduces it, and the measured metrics (the VQ-VAE's at
//! export time; the full evaluation table once `evaluate_embedded` has run).

use std::fmt::Write as _;
use std::path::Path;

use super::diffusers_export::RECOMMENDED_GENERATION;
use super::evaluation::{EvalReport, report_rows};
use super::training_report::TrainingReport;
use vq_train::write_atomic;

/// Writes `README.md` into the exported folder `out`.
pub fn write_model_card(
    out: &Path,
    report: &TrainingReport,
    eval: Option<&EvalReport>,
) -> anyhow::Result<()> {
    let c = &report.config;
    let mut s = String::new();
    let t = &c.transformer;
    let d = &c.denoiser;
    writeln!(
        s,
        "# shape-world VQ-Diffusion (the embedded default model)\n"
    )?;
    writeln!(
        s,
        "A small VQ-Diffusion trained from scratch on the procedural `shape-world` data set \
         (32×32 images of one or two coloured shapes with captions), in the diffusers \
         `VQDiffusionPipeline` layout. It exists so that `vqd generate` works offline on a fresh \
         clone; it is also the testbed for the project's ablations.\n"
    )?;
    writeln!(
        s,
        "## Reproduce\n\n```sh\ncargo run --release -p experiments --bin train_embedded -- --run-dir results/embedded-run --out models/shape-world\ncargo run --release -p experiments --bin evaluate_embedded -- --model models/shape-world\n```\n"
    )?;
    writeln!(
        s,
        "Rerunning the training command resumes an interrupted run (atomic checkpoints in the run \
         folder; every random choice is seeded by the step). Seed {}.\n",
        c.seed
    )?;
    writeln!(s, "## Data\n")?;
    writeln!(
        s,
        "`shape_world::World::default()` training split: {} images for the VQ-VAE, {} captioned \
         examples for the denoiser (captions re-phrased at every draw from the grammar's \
         phrasings; {:.0}% of one-object captions drop some attributes to teach under-specified \
         prompts). The held-out (shape, colour) pairs green triangle, blue circle and yellow \
         square never occur in training.\n",
        c.vq.images,
        d.examples,
        100.0 * d.partial_caption_rate
    )?;
    writeln!(s, "## Components\n")?;
    writeln!(s, "| part | architecture | training |\n| --- | --- | --- |")?;
    writeln!(
        s,
        "| `vqvae` | diffusers `VQModel`, channels {:?}, no attention, {} codes × {} dims, 32×32 → 8×8 | {} steps × {} images, AdamW {:.0e}, EMA codebook with dead-code restarts |",
        c.vq.model.block_out_channels,
        c.vq.model.num_vq_embeddings,
        c.vq.model.embed_dim(),
        c.vq.steps,
        c.vq.batch_size,
        c.vq.learning_rate
    )?;
    writeln!(
        s,
        "| `text_encoder` | CLIP text transformer, width {}, {} layers, {} heads, real CLIP BPE vocabulary (49,408 tokens; stored f16) | {}then jointly with the denoiser |",
        c.text.hidden_size,
        c.text.num_hidden_layers,
        c.text.num_attention_heads,
        c.text_pretraining.as_ref().filter(|p| p.steps > 0).map_or(String::new(), |p| format!(
            "pre-trained {} steps × {} captions (a linear probe on the mean state reads each attribute), ",
            p.steps, p.batch_size
        ))
    )?;
    writeln!(
        s,
        "| `transformer` | diffusers `Transformer2DModel` (discrete), width {} ({} heads × {}), {} blocks, AdaLN over T = {} steps, {} classes | {} steps × {} examples, AdamW peak {:.0e} (warm-up {}, cosine to {}×; cross-attention key/value projections of the text at {}× init and rate), gradient-norm clip {}, caption dropout {} |",
        t.num_attention_heads * t.attention_head_dim,
        t.num_attention_heads,
        t.attention_head_dim,
        t.num_layers,
        c.chain.num_timesteps,
        c.codebook() + 1,
        d.steps,
        d.batch_size,
        d.learning_rate,
        d.warmup_steps,
        d.final_lr_fraction,
        d.context_projection_scale,
        d.grad_clip.map_or("none".to_string(), |c| c.to_string()),
        d.caption_dropout
    )?;
    writeln!(
        s,
        "| `learned_classifier_free_sampling_embeddings` | learned null condition (77 × {}) | replaces dropped captions (Improved VQ-Diffusion) |\n",
        c.text.hidden_size
    )?;
    writeln!(
        s,
        "Chain: mask-and-replace, the paper's preset (γ̄_T = {}, Kβ̄_T = {}), loss = VLB + \
         auxiliary x₀ loss (λ = {}, adaptive weight {}), importance-sampled t.\n",
        c.chain.gamma_bar_final, c.chain.k_beta_bar_final, d.loss.aux_weight, d.loss.adaptive_aux
    )?;
    writeln!(
        s,
        "**Why this text-encoder training.** No pretrained CLIP can be downloaded here. Trained \
         only jointly with the denoiser, the encoder learned colour but never position: the \
         denoiser's cross-attention starts near uniform over the 77 states (mostly padding), \
         so each image location receives the mean state, and binding a position word to a \
         location needs a position code in that mean and a location-dependent reading of it at \
         once — neither gets a gradient without the other. So the encoder is first pre-trained \
         for about two minutes to make the mean state say every attribute (a linear probe \
         classifies colour, shape, size, row, column and relation from it), then trained jointly; \
         and the key/value projections of the (unit-norm) text states start and learn at √C the \
         usual scale, like projections of LayerNorm'ed inputs. The architecture and tokenizer \
         stay CLIP's, so the folder loads in diffusers unchanged.\n"
    )?;
    writeln!(
        s,
        "**Sampling.** `generation_config.json` recommends guidance scale {} (off) — vq-pipeline \
         and `vqd` use it unless told otherwise; diffusers ignores the file and uses 5. Guidance \
         over-saturates a model this small: more blobs of the asked-for colour, worse FID and \
         fewer fully correct images at every scale above 1 (docs/results.md §4).\n",
        RECOMMENDED_GENERATION.guidance_scale.unwrap_or(5.0)
    )?;
    writeln!(s, "## Measured\n")?;
    writeln!(
        s,
        "* VQ-VAE on {} validation images: PSNR {:.2} dB, {} / {} codes used (perplexity {:.1}); \
         the oracle reads {:.1}% of the reconstructions exactly as the scene.",
        c.vq.validation_images,
        report.vq.validation_psnr,
        report.vq.validation_used_codes,
        report.vq.codebook,
        report.vq.validation_perplexity,
        100.0 * report.vq.oracle_all_correct_on_reconstructions
    )?;
    writeln!(
        s,
        "* Denoiser: {:.0} s of training ({:.2} s/step in the last session), final loss {:.3}.",
        report.denoiser_seconds,
        report.denoiser_seconds_per_step,
        report.final_loss.unwrap_or(f64::NAN)
    )?;
    match eval {
        Some(e) => {
            writeln!(
                s,
                "\nEvaluation (`evaluate_embedded`, the diffusers sampler with the model's recommended settings, {} single-, {} \
                 two-object test prompts, {} held-out-split prompts, {} × \"a circle\"):\n",
                e.settings.single, e.settings.pair, e.settings.held_out, e.settings.diversity
            )?;
            writeln!(s, "| metric | value |\n| --- | --- |")?;
            for (k, v) in report_rows(e) {
                writeln!(s, "| {k} | {v:.4} |")?;
            }
        }
        None => writeln!(
            s,
            "* Smoke check at export: the oracle reads {:.0}% of 8 single-object test prompts' \
             images fully correctly. Full evaluation: run `evaluate_embedded`.",
            100.0 * report.smoke_single_all_correct
        )?,
    }
    Ok(write_atomic(&out.join("README.md"), s.as_bytes())?)
}
