//! Hostile and odd inputs, each answered by a clear error of a known variant before any large
//! allocation or any image is written: non-finite weights, configs that size allocations,
//! inconsistent tokenizers, impossible batch sizes, settings that would be silently ignored, and
//! output paths checked up front and written atomically.

use std::path::{Path, PathBuf};

use discrete_diffusion::SeededNoise;
use reference_fixtures::materialise_pipeline;
use vq_pipeline::{
    Error, GenerationOptions, LoadOptions, ModelRecord, NullCondition, OutputPlan, SamplerChoice,
    VqDiffusionPipeline, write_outputs,
};

fn fixture_copy(tag: &str) -> PathBuf {
    let root = materialise_pipeline("pipeline_learnable").unwrap();
    let copy = std::env::temp_dir().join(format!("vqd-hardening-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::rename(&root, &copy).unwrap();
    copy
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

/// Overwrites every value of the f32 tensor `key` of a safetensors file with `value`.
fn overwrite_tensor(path: &Path, key: &str, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let info = &header[key];
    assert_eq!(info["dtype"], "F32", "{key}");
    let start = 8 + n + info["data_offsets"][0].as_u64().unwrap() as usize;
    let end = 8 + n + info["data_offsets"][1].as_u64().unwrap() as usize;
    for chunk in bytes[start..end].chunks_exact_mut(4) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The shared reader's error inside a component's error.
fn weight_error(err: &Error) -> &vq_nn::Error {
    let Error::Component { source, .. } = err else {
        panic!("not a component error: {err:?}")
    };
    if let Some(vq_codebook::Error::Weights(e)) = source.downcast_ref::<vq_codebook::Error>() {
        return e;
    }
    if let Some(vq_transformer::Error::Weights(e)) = source.downcast_ref::<vq_transformer::Error>()
    {
        return e;
    }
    if let Some(clip_text::Error::Weights(e)) = source.downcast_ref::<clip_text::Error>() {
        return e;
    }
    panic!("not a weight error: {err}")
}

fn load(root: &Path) -> Result<VqDiffusionPipeline, Error> {
    VqDiffusionPipeline::from_pretrained(root, LoadOptions::default())
}

fn problems(root: &Path) -> Vec<String> {
    match load(root) {
        Err(Error::InvalidModel { problems, .. }) => problems,
        other => panic!("expected InvalidModel, got {:?}", other.err()),
    }
}

#[test]
fn non_finite_weights_are_errors_naming_the_tensor() {
    for (value, tag) in [(f32::NAN, "nan"), (f32::INFINITY, "inf")] {
        let root = fixture_copy(tag);
        let file = root.join("vqvae/diffusion_pytorch_model.safetensors");
        overwrite_tensor(&file, "decoder.conv_out.bias", value);
        let err = load(&root).err().unwrap();
        match weight_error(&err) {
            vq_nn::Error::NonFinite {
                key, count, first, ..
            } => {
                assert_eq!(key, "decoder.conv_out.bias");
                assert_eq!((*count, *first), (3, 0));
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(root);
    }
}

#[test]
fn weights_that_overflow_in_decoding_write_no_image() {
    let root = fixture_copy("overflow");
    let file = root.join("vqvae/diffusion_pytorch_model.safetensors");
    overwrite_tensor(&file, "post_quant_conv.weight", 3.0e38);
    let pipeline = load(&root).unwrap();
    let options = GenerationOptions::new(["a"]).guidance_scale(1.0).steps(2);
    let err = pipeline
        .generate(&options, &mut SeededNoise::new(0), |_| Ok(()))
        .err()
        .unwrap();
    assert!(matches!(err, Error::NonFiniteOutput(_)), "{err:?}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn configs_that_size_allocations_are_bounded_before_loading() {
    let root = fixture_copy("timesteps");
    edit_json(&root.join("scheduler/scheduler_config.json"), |v| {
        v["num_train_timesteps"] = 1_000_000_000.into()
    });
    edit_json(&root.join("transformer/config.json"), |v| {
        v["num_embeds_ada_norm"] = 1_000_000_000.into()
    });
    let p = problems(&root);
    assert!(
        p.iter()
            .any(|m| m.contains("num_train_timesteps must be in [2, 100000]")),
        "{p:?}"
    );
    let _ = std::fs::remove_dir_all(root);

    let root = fixture_copy("layers");
    edit_json(&root.join("transformer/config.json"), |v| {
        v["num_layers"] = 0.into()
    });
    let p = problems(&root);
    assert!(p.iter().any(|m| m.contains("num_layers = 0")), "{p:?}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_tokenizer_length_other_than_the_text_encoders_is_refused() {
    let root = fixture_copy("tokenizer");
    let config = root.join("tokenizer/tokenizer_config.json");
    edit_json(&config, |v| v["model_max_length"] = 5.into());
    let p = problems(&root);
    assert!(
        p.iter()
            .any(|m| m.contains("model_max_length 5") && m.contains("max_position_embeddings")),
        "{p:?}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn impossible_batches_and_ineffective_settings_are_refused() {
    let invalid = |o: GenerationOptions, needle: &str| match o.validate(100) {
        Err(Error::InvalidOption(m)) => assert!(m.contains(needle), "{needle}: {m}"),
        other => panic!("{needle}: {other:?}"),
    };
    invalid(
        GenerationOptions::new(["a", "b"]).num_images_per_prompt(usize::MAX / 2 + 1),
        "too many images",
    );
    invalid(
        GenerationOptions::new(["a"])
            .sampler(SamplerChoice::Full)
            .steps(10),
        "--steps has no effect with the full sampler",
    );
    invalid(
        GenerationOptions::new(["a"])
            .sampler(SamplerChoice::Purity)
            .steps(10),
        "--steps has no effect with the purity sampler",
    );
    invalid(
        GenerationOptions::new(["a"]).unmask_per_call(3),
        "--unmask-per-call has no effect with the diffusers sampler",
    );
    invalid(
        GenerationOptions::new(["a"]).prior_weight(2.0),
        "--prior-weight has no effect",
    );
    invalid(
        GenerationOptions::new(["a"])
            .guidance_scale(1.0)
            .null_condition(NullCondition::EmptyPrompt),
        "--null has no effect without guidance",
    );
    // The same settings where they take effect are fine.
    GenerationOptions::new(["a"])
        .sampler(SamplerChoice::Purity)
        .prior_weight(2.0)
        .unmask_per_call(3)
        .validate(100)
        .unwrap();
    GenerationOptions::new(["a"])
        .null_condition(NullCondition::EmptyPrompt)
        .validate(100)
        .unwrap();
}

#[test]
fn batches_split_in_order_and_a_single_batch_is_the_whole_call() {
    let options = GenerationOptions::new(["a", "b"]).num_images_per_prompt(3);
    assert_eq!(options.batches(6).unwrap(), vec![options.clone()]);
    let runs = options.batches(4).unwrap();
    let prompts: Vec<Vec<String>> = runs.iter().map(|r| r.prompts.clone()).collect();
    assert_eq!(prompts, [vec!["a", "a", "a", "b"], vec!["b", "b"]]);
    assert!(runs.iter().all(|r| r.num_images_per_prompt == 1));
    assert!(matches!(
        options.batches(0),
        Err(Error::InvalidOption(m)) if m.contains("--batch-size")
    ));

    // Generating batch by batch from one noise source gives the same images for the same
    // seed and batch size, and the whole job's prompts in order.
    let root = fixture_copy("batches");
    let pipeline = load(&root).unwrap();
    let options = GenerationOptions::new(["a", "b"])
        .num_images_per_prompt(2)
        .guidance_scale(1.0)
        .steps(2);
    let job = || {
        let mut noise = SeededNoise::new(3);
        let mut images = Vec::new();
        for run in options.batches(3).unwrap() {
            let g = pipeline.generate(&run, &mut noise, |_| Ok(())).unwrap();
            images.extend(g.image_prompts.into_iter().zip(g.images));
        }
        images
    };
    let (a, b) = (job(), job());
    assert_eq!(a, b);
    let prompts: Vec<&str> = a.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(prompts, ["a", "a", "b", "b"]);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn output_paths_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = |r: vq_pipeline::Result<OutputPlan>, needle: &str| match r {
        Err(Error::InvalidOption(m)) => assert!(m.contains(needle), "{needle}: {m}"),
        other => panic!("{needle}: {other:?}"),
    };
    invalid(
        OutputPlan::new(&dir.path().join("x.jpg"), 1, false),
        "unsupported extension .jpg",
    );
    invalid(
        OutputPlan::new(&dir.path().join("two.png"), 2, false),
        "names one PNG but 2 images",
    );
    invalid(
        OutputPlan::new(&dir.path().join("one"), 1, true),
        "--contact-sheet needs several images",
    );
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    invalid(
        OutputPlan::new(&file, 2, false),
        "existing file without an extension",
    );
    // Under a file: an I/O error naming the path, before any work.
    assert!(matches!(
        OutputPlan::new(&file.join("out.png"), 1, false),
        Err(Error::Io { .. })
    ));
    assert_eq!(
        OutputPlan::new(&dir.path().join("img.PNG"), 1, false).unwrap(),
        OutputPlan::Single(dir.path().join("img.PNG"))
    );
    let folder = OutputPlan::new(&dir.path().join("runs.v2/"), 3, false).unwrap_err();
    assert!(matches!(folder, Error::InvalidOption(_)));
    let plan = OutputPlan::new(&dir.path().join("folder"), 3, true).unwrap();
    assert!(dir.path().join("folder").is_dir() && plan.wants_contact_sheet());
}

#[test]
fn outputs_are_written_atomically_with_the_effective_settings() {
    let root = fixture_copy("sidecar");
    let pipeline = load(&root).unwrap();
    let options = GenerationOptions::new(["a"]).guidance_scale(1.0).steps(2);
    let generation = pipeline
        .generate(&options, &mut SeededNoise::new(0), |_| Ok(()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("one.png");
    let record = pipeline.model_record("fixture", None);
    write_outputs(&out, &generation, &options, &record, false).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left: {names:?}");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("one.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["model"]["dtype"], "F32");
    assert_eq!(sidecar["model"]["device"], "cpu");
    assert_eq!(
        sidecar["versions"]["discrete-diffusion"],
        discrete_diffusion::VERSION
    );
    assert_eq!(sidecar["options"]["steps"], 2);
    // Settings without effect are not recorded: no guidance, so no null condition; not purity.
    let recorded = sidecar["options"].as_object().unwrap();
    for absent in ["null_condition", "prior_weight", "unmask_per_call"] {
        assert!(
            !recorded.contains_key(absent),
            "{absent} recorded: {recorded:?}"
        );
    }
    assert_eq!(ModelRecord::named("m").name, "m");
    let _ = std::fs::remove_dir_all(root);
}
