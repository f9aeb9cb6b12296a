//! CI smoke test of the embedded model's training command: the quick configuration trains a few
//! steps, is interrupted and resumed, exports a diffusers folder, and that folder loads in the
//! real pipeline and generates an image the oracle can read.

use discrete_diffusion::SeededNoise;
use experiments::embedded::{EmbeddedConfig, RunPaths, run_training};
use vq_pipeline::{GenerationOptions, LoadOptions, VqDiffusionPipeline};

#[test]
fn quick_recipe_trains_resumes_exports_and_generates() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("embedded-quick-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let paths = RunPaths {
        run_dir: root.join("run"),
        out_dir: root.join("model"),
    };
    let config = EmbeddedConfig::quick();

    let first = run_training(&config, &paths, Some(3))?;
    assert!(!first.complete);
    assert!(
        paths
            .run_dir
            .join("denoiser/checkpoint/state.json")
            .is_file()
    );
    assert!(paths.run_dir.join("denoiser/recipe.json").is_file());
    assert!(!paths.out_dir.exists());

    let second = run_training(&config, &paths, None)?;
    assert!(second.complete);
    assert_eq!(second.denoiser_sessions, vec![0, 3]);
    assert!(second.final_loss.is_some_and(f64::is_finite));
    assert!(second.export_bytes > 0);
    for file in [
        "model_index.json",
        "README.md",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "vqvae/config.json",
        "vqvae/diffusion_pytorch_model.safetensors",
        "learned_classifier_free_sampling_embeddings/config.json",
        "learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors",
    ] {
        assert!(paths.out_dir.join(file).is_file(), "missing {file}");
    }

    let pipeline = VqDiffusionPipeline::from_pretrained(&paths.out_dir, LoadOptions::default())?;
    assert!(pipeline.has_learned_null());
    let options = GenerationOptions::new(["a red circle in the top left"]);
    let out = pipeline.generate(&options, &mut SeededNoise::new(0), |_| Ok(()))?;
    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].dimensions(), (32, 32));
    let _ = shape_world::analyse(&out.images[0]);

    // A finished run is not retrained: rerunning only re-exports.
    let third = run_training(&config, &paths, None)?;
    assert_eq!(third.denoiser_sessions, vec![0, 3, 8]);
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
