//! Loading and validation: every problem of a bad folder reported at once, model sources,
//! corrupt weights, option checks and output paths — clear errors, never panics.

use discrete_diffusion::{SeededNoise, Truncation};
use reference_fixtures::materialise_pipeline;
use vq_pipeline::{
    Error, GenerationOptions, LoadOptions, ModelRecord, ModelSource, Variant, VqDiffusionPipeline,
    write_outputs,
};

fn fixture_copy(tag: &str) -> std::path::PathBuf {
    let root = materialise_pipeline("pipeline_learnable").unwrap();
    let copy = std::env::temp_dir().join(format!("vqd-loading-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::rename(&root, &copy).unwrap();
    copy
}

#[test]
fn missing_files_are_all_reported() {
    let root = fixture_copy("missing");
    std::fs::remove_file(root.join("scheduler/scheduler_config.json")).unwrap();
    std::fs::remove_file(root.join("vqvae/diffusion_pytorch_model.safetensors")).unwrap();
    std::fs::remove_file(root.join("tokenizer/vocab.json")).unwrap();
    let err = VqDiffusionPipeline::from_pretrained(&root, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    for needle in [
        "scheduler/scheduler_config.json",
        "vqvae weights",
        "tokenizer",
    ] {
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    assert!(err.contains("3 problem(s)"), "{err}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn inconsistent_configs_are_all_reported() {
    let root = fixture_copy("inconsistent");
    let path = root.join("transformer/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["cross_attention_dim"] = 12.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let path = root.join("scheduler/scheduler_config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["num_vec_classes"] = 33.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let err = VqDiffusionPipeline::from_pretrained(&root, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cross_attention_dim"), "{err}");
    assert!(err.contains("num_vec_classes"), "{err}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn corrupt_weights_name_the_component() {
    let root = fixture_copy("corrupt");
    let path = root.join("transformer/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = VqDiffusionPipeline::from_pretrained(&root, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("transformer"), "{err}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn missing_fp16_variant_is_explained() {
    let root = fixture_copy("variant");
    let err = VqDiffusionPipeline::from_pretrained(
        &root,
        LoadOptions {
            variant: Variant::Fp16,
            ..LoadOptions::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("diffusion_pytorch_model.fp16.safetensors"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn model_sources_parse() {
    let dir = std::env::temp_dir();
    assert_eq!(
        ModelSource::parse(dir.to_str().unwrap(), "main").unwrap(),
        ModelSource::Local(dir.clone())
    );
    assert_eq!(
        ModelSource::parse("microsoft/vq-diffusion-ithq", "fp16").unwrap(),
        ModelSource::Hub {
            repo: "microsoft/vq-diffusion-ithq".into(),
            revision: "fp16".into()
        }
    );
    assert!(matches!(
        ModelSource::parse("no such thing here", "main"),
        Err(Error::ModelNotFound { .. })
    ));
    assert!(matches!(
        ModelSource::parse("./missing/dir/x", "main"),
        Err(Error::ModelNotFound { .. })
    ));
}

#[test]
fn options_are_validated_and_outputs_checked() {
    let root = fixture_copy("options");
    let pipeline = VqDiffusionPipeline::from_pretrained(&root, LoadOptions::default()).unwrap();
    let run = |o: GenerationOptions| {
        pipeline
            .generate(&o, &mut SeededNoise::new(0), |_| Ok(()))
            .err()
            .map(|e| e.to_string())
    };
    assert!(
        run(GenerationOptions::new(Vec::<String>::new()))
            .unwrap()
            .contains("no prompt")
    );
    assert!(
        run(GenerationOptions::new([" "]))
            .unwrap()
            .contains("empty")
    );
    assert!(
        run(GenerationOptions::new(["a"]).steps(0))
            .unwrap()
            .contains("at least 1")
    );
    assert!(
        run(GenerationOptions::new(["a"]).steps(11))
            .unwrap()
            .contains("trained with")
    );
    assert!(
        run(GenerationOptions::new(["a"]).guidance_scale(f64::NAN))
            .unwrap()
            .contains("guidance")
    );
    assert!(
        run(GenerationOptions::new(["a"]).truncation(Truncation::TopR(1.5)))
            .unwrap()
            .contains("truncation")
    );
    assert!(
        run(GenerationOptions::new(["a"]).num_images_per_prompt(0))
            .unwrap()
            .contains("num-images")
    );

    // Same seed, same images; every sampler runs.
    let options = GenerationOptions::new(["a red circle", "a blue square"]);
    let a = pipeline
        .generate(&options, &mut SeededNoise::new(7), |_| Ok(()))
        .unwrap();
    let b = pipeline
        .generate(&options, &mut SeededNoise::new(7), |_| Ok(()))
        .unwrap();
    assert_eq!(
        a.tokens.to_vec2::<u32>().unwrap(),
        b.tokens.to_vec2::<u32>().unwrap()
    );
    assert_eq!(a.seed, Some(7));

    // The step callback stops a generation with `Cancelled`.
    let mut calls = 0;
    let cancelled = pipeline.generate(&options, &mut SeededNoise::new(7), |_| {
        calls += 1;
        if calls == 3 {
            Err(vq_pipeline::Error::Cancelled)
        } else {
            Ok(())
        }
    });
    assert!(
        matches!(cancelled, Err(vq_pipeline::Error::Cancelled)),
        "{cancelled:?}"
    );
    assert_eq!(calls, 3);
    for sampler in [
        vq_pipeline::SamplerChoice::Full,
        vq_pipeline::SamplerChoice::Strided,
        vq_pipeline::SamplerChoice::FastOriginal,
        vq_pipeline::SamplerChoice::HighQuality,
        vq_pipeline::SamplerChoice::Purity,
    ] {
        let o = GenerationOptions::new(["a red circle"]).sampler(sampler);
        // Only the samplers that choose a step count take --steps.
        let o = match sampler {
            vq_pipeline::SamplerChoice::Strided | vq_pipeline::SamplerChoice::FastOriginal => {
                o.steps(5)
            }
            _ => o,
        };
        let g = pipeline
            .generate(&o, &mut SeededNoise::new(1), |_| Ok(()))
            .unwrap();
        assert_eq!(g.images.len(), 1, "{sampler:?}");
    }
    // The samplers beyond the chain: each makes the model calls it promises.
    for sampler in vq_pipeline::SamplerChoice::ALL {
        let o = GenerationOptions::new(["a red circle", "a blue square"]).sampler(sampler);
        let o = if sampler.takes_steps() { o.steps(4) } else { o };
        let g = pipeline
            .generate(&o, &mut SeededNoise::new(2), |_| Ok(()))
            .unwrap();
        assert_eq!(g.images.len(), 2, "{sampler:?}");
        let n = pipeline.num_tokens();
        match sampler {
            vq_pipeline::SamplerChoice::MaskGit
            | vq_pipeline::SamplerChoice::Halton
            | vq_pipeline::SamplerChoice::RandomOrder
            | vq_pipeline::SamplerChoice::Remdm => assert_eq!(g.model_calls, 4, "{sampler:?}"),
            // 4 strided predictor steps, the last 2 landing on noise corrected once each.
            vq_pipeline::SamplerChoice::PredictorCorrector => {
                assert_eq!(g.model_calls, 4 + 2, "{sampler:?}")
            }
            vq_pipeline::SamplerChoice::Threshold | vq_pipeline::SamplerChoice::EntropyBounded => {
                assert!(
                    (1..=n).contains(&g.model_calls),
                    "{sampler:?}: {}",
                    g.model_calls
                )
            }
            _ => {}
        }
    }
    let err = GenerationOptions::new(["a red circle"])
        .sampler(vq_pipeline::SamplerChoice::FirstHitting)
        .steps(5)
        .validate(pipeline.num_timesteps())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--steps has no effect with the first-hitting sampler"),
        "{err}"
    );

    // Several images need a folder; an unwritable path is reported with its name.
    let err = write_outputs(
        &root.join("x.png"),
        &a,
        &options,
        &ModelRecord::named("m"),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("pass a folder"), "{err}");
    let blocker = root.join("model_index.json");
    let err = write_outputs(
        &blocker.join("out"),
        &a,
        &options,
        &ModelRecord::named("m"),
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("model_index.json"), "{err}");
    let written = write_outputs(
        &root.join("out"),
        &a,
        &options,
        &ModelRecord::named("m"),
        true,
    )
    .unwrap();
    assert_eq!(written.len(), 4); // two images, a contact sheet, the sidecar
    let _ = std::fs::remove_dir_all(root);
}
