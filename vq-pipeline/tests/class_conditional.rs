//! The original class-conditional (ImageNet) network, converted from tiny checkpoints in the
//! original layout (`fixtures/original/imagenet*_tiny.pth`): its log-probabilities equal those
//! of a re-implementation of the original block (itself checked against the original
//! repository's modules by `reference/check_original_class_model.py`), for ordinary labels,
//! the mean-row and the learned null class, and a guided step; and the class pipeline
//! generates from it.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use discrete_diffusion::{Denoiser, SeededNoise};
use reference_fixtures::{FixtureFile, assert_close, fixtures_dir};
use vq_pipeline::{
    ClassConditionalPipeline, ConvertOptions, GenerationOptions, LoadOptions, OriginalFamily,
    RemapChoice, convert_original, is_class_conditional_model,
};
use vq_transformer::{ClassCondition, Condition2ImageTransformer};

fn original(name: &str) -> PathBuf {
    fixtures_dir().join("original").join(name)
}

fn tiny_class_options(learned: bool) -> ConvertOptions {
    ConvertOptions {
        remap: RemapChoice::File(original("remap_16_to_7.pt")),
        heads: Some(2),
        vq_norm_groups: 4,
        image_size: Some(8),
        class_labels: learned.then_some(5),
        ..ConvertOptions::default()
    }
}

fn converted(name: &str, learned: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let report = convert_original(&original(name), &out, &tiny_class_options(learned))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.transformer.family, OriginalFamily::Class);
    assert_eq!(report.learned_null, learned);
    assert_eq!(
        report.used_ema, learned,
        "only the learnable fake has an EMA copy"
    );
    assert!(report.schedule_checked);
    assert_eq!(
        report.remap.unwrap().quantize_to_full,
        vec![0, 2, 5, 8, 9, 12, 15]
    );
    (dir, out)
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn converted_class_models_give_the_original_networks_log_probabilities() {
    let golden = FixtureFile::open("original/class_reference.safetensors").unwrap();
    let x_t = golden.tensor("x_t").unwrap().to_dtype(DType::U32).unwrap();
    for (file, name, learned) in [
        ("imagenet_tiny.pth", "plain", false),
        ("imagenet_learnable_tiny.pth", "learnable", true),
    ] {
        let (_dir, out) = converted(file, learned);
        assert!(is_class_conditional_model(&out));
        let model =
            Condition2ImageTransformer::from_pretrained(&out, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.config().has_learned_null(), learned);
        let null = model.config().null_label();
        assert_eq!(null, 5);
        let cases = [
            (format!("{name}.labels_0_3.t4"), 4, vec![0, 3], 1.0),
            (format!("{name}.null.t9"), 9, vec![null, null], 1.0),
            (format!("{name}.guided_1_4.s1.5.t2"), 2, vec![1, 4], 1.5),
        ];
        for (key, t, labels, scale) in cases {
            let got = model
                .log_p_x0(&x_t, t, &ClassCondition { labels, scale })
                .unwrap();
            let want = golden.tensor(&key).unwrap();
            assert_eq!(got.dims(), want.dims(), "{key}");
            // log-probabilities down to about -20, guidance amplifying differences by its scale
            let d = assert_close(&key, &f32s(&got), &f32s(&want), 3e-5);
            eprintln!("{key}: max |ours - reference| = {d:.2e}");
        }
    }
}

#[test]
fn the_class_pipeline_generates_reproducibly_from_labels_and_names() {
    let (_dir, out) = converted("imagenet_learnable_tiny.pth", true);
    let pipeline = ClassConditionalPipeline::from_pretrained(&out, LoadOptions::default()).unwrap();
    assert_eq!(pipeline.parse_class("3").unwrap(), 3);
    assert_eq!(pipeline.parse_class("none").unwrap(), 5);
    let e = pipeline.parse_class("5").unwrap_err().to_string();
    assert!(e.contains("out of range") && e.contains("0..5"), "{e}");
    let e = pipeline
        .parse_class("golden retriever")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no class names"), "{e}");
    let options = GenerationOptions::new(vec!["class 1".to_string(), "class 4".to_string()])
        .guidance_scale(1.5)
        .steps(5);
    let run = |seed| {
        pipeline
            .generate(&[1, 4], &options, &mut SeededNoise::new(seed), |_| Ok(()))
            .unwrap()
    };
    let (a, b) = (run(3), run(3));
    assert_eq!(a.images.len(), 2);
    assert_eq!(a.images[0].dimensions(), (8, 8));
    assert_eq!(
        a.tokens.to_vec2::<u32>().unwrap(),
        b.tokens.to_vec2::<u32>().unwrap()
    );
    assert!(
        a.tokens
            .to_vec2::<u32>()
            .unwrap()
            .iter()
            .flatten()
            .all(|&t| t < 7)
    );
    assert_eq!(a.model_calls, 5);
    let e = pipeline
        .generate(&[1], &options, &mut SeededNoise::new(0), |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 class labels for 2 image names"), "{e}");
}

#[test]
fn imagenet_class_names_are_written_for_a_thousand_class_model() {
    // The tiny model has 5 classes: no names. A 1000-label conversion writes ImageNet's names;
    // asking for 1000 labels on a 5-row table is refused with the reason.
    let dir = tempfile::tempdir().unwrap();
    let e = convert_original(
        &original("imagenet_tiny.pth"),
        &dir.path().join("m"),
        &ConvertOptions {
            class_labels: Some(1000),
            ..tiny_class_options(false)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("class_table_rows 5") && e.contains("num_labels 1000"),
        "{e}"
    );
    let (_dir, out) = converted("imagenet_tiny.pth", false);
    assert!(!out.join(vq_pipeline::CLASS_NAMES_FILE).exists());
    // a text pipeline refuses the folder, naming it
    let e = vq_pipeline::VqDiffusionPipeline::from_pretrained(&out, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model"), "{e}");
}
