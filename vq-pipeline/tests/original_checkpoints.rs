//! `convert_original` on tiny checkpoints in the exact layouts of the original release
//! (`fixtures/original/`, made by `reference/make_original_fixtures.py` from the tiny diffusers
//! fixtures by inverting the mapping): the converted folders must hold the fixtures' tensors
//! bit for bit and replay diffusers' reference runs token for token; every error path names
//! the file and key at fault.

mod replay;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use reference_fixtures::{fixtures_dir, materialise_pipeline};
use vq_pipeline::{
    ConvertOptions, OriginalFamily, OriginalQuantizer, RemapChoice, convert_original,
};

fn original(name: &str) -> PathBuf {
    fixtures_dir().join("original").join(name)
}

/// The options the tiny fixtures need (their head and group counts are not the release's).
fn tiny_options() -> ConvertOptions {
    let expected = reference_fixtures::json("original/expected.json").unwrap();
    ConvertOptions {
        remap: RemapChoice::File(original("remap_24_to_16.pt")),
        tokenizer: Some(fixtures_dir().join("tokenizer")),
        heads: Some(expected["heads"].as_u64().unwrap() as usize),
        text_heads: Some(expected["text_heads"].as_u64().unwrap() as usize),
        vq_norm_groups: expected["vq_norm_groups"].as_u64().unwrap() as usize,
        ..ConvertOptions::default()
    }
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every tensor of `got` equals `want`'s bit for bit (after `want` goes through `round`).
fn assert_same_tensors(
    what: &str,
    got: &Path,
    want: &Path,
    round: impl Fn(&str, Tensor) -> Tensor,
) {
    let (got, want) = (tensors(got), tensors(want));
    let mut got_keys: Vec<_> = got.keys().collect();
    let mut want_keys: Vec<_> = want.keys().collect();
    got_keys.sort();
    want_keys.sort();
    assert_eq!(got_keys, want_keys, "{what}: key sets differ");
    for (k, w) in &want {
        let g = &got[k];
        assert_eq!(g.dims(), w.dims(), "{what}: {k}");
        let w = round(k, w.clone());
        let g: Vec<f32> = g
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let w: Vec<f32> = w
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: {k} differs"
        );
    }
}

fn exact(_: &str, t: Tensor) -> Tensor {
    t
}

fn assert_same_config(component: &str, got: &Path, want: &Path) {
    let read = |root: &Path| -> serde_json::Value {
        let name = if component == "scheduler" {
            "scheduler/scheduler_config.json".to_string()
        } else {
            format!("{component}/config.json")
        };
        serde_json::from_str(&std::fs::read_to_string(root.join(name)).unwrap()).unwrap()
    };
    let (got, want) = (read(got), read(want));
    match component {
        "transformer" => assert_eq!(
            serde_json::from_value::<vq_transformer::Transformer2DConfig>(got).unwrap(),
            serde_json::from_value::<vq_transformer::Transformer2DConfig>(want).unwrap()
        ),
        "vqvae" => {
            let parse = |v| serde_json::from_value::<vq_codebook::VqModelConfig>(v).unwrap();
            assert_eq!(parse(got), parse(want))
        }
        "text_encoder" => {
            let parse = |v| serde_json::from_value::<clip_text::ClipTextConfig>(v).unwrap();
            assert_eq!(parse(got), parse(want))
        }
        _ => {
            for key in [
                "learnable",
                "hidden_size",
                "length",
                "num_vec_classes",
                "num_train_timesteps",
            ] {
                assert_eq!(got.get(key), want.get(key), "{component}: {key}");
            }
        }
    }
}

fn convert(
    checkpoint: &str,
    options: &ConvertOptions,
) -> (tempfile::TempDir, PathBuf, vq_pipeline::ConversionReport) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted");
    let report = convert_original(&original(checkpoint), &out, options)
        .unwrap_or_else(|e| panic!("{checkpoint}: {e}"));
    (dir, out, report)
}

fn assert_folder_equals_fixture(
    out: &Path,
    fixture: &Path,
    text_round: impl Fn(&str, Tensor) -> Tensor,
) {
    for component in ["transformer", "vqvae"] {
        assert_same_tensors(
            component,
            &out.join(component)
                .join("diffusion_pytorch_model.safetensors"),
            &fixture
                .join(component)
                .join("diffusion_pytorch_model.safetensors"),
            exact,
        );
        assert_same_config(component, out, fixture);
    }
    assert_same_tensors(
        "text_encoder",
        &out.join("text_encoder/model.safetensors"),
        &fixture.join("text_encoder/model.safetensors"),
        text_round,
    );
    assert_same_config("text_encoder", out, fixture);
    assert_same_config("scheduler", out, fixture);
    assert_same_config("learned_classifier_free_sampling_embeddings", out, fixture);
}

#[test]
fn a_learnable_checkpoint_converts_to_the_fixture_and_replays_diffusers() {
    let (_dir, out, report) = convert("learnable_tiny.pth", &tiny_options());
    assert_eq!(report.transformer.family, OriginalFamily::Text);
    assert_eq!(
        (report.transformer.width, report.transformer.layers),
        (16, 2)
    );
    assert_eq!(
        (report.transformer.classes, report.transformer.timesteps),
        (16, 10)
    );
    assert!(report.learned_null && !report.used_ema && report.schedule_checked);
    assert_eq!(report.vqgan.quantizer, OriginalQuantizer::Gumbel);
    assert_eq!(report.vqgan.codebook_rows, 24);
    assert_eq!(report.remap.as_ref().unwrap().quantize_to_full.len(), 16);

    let fixture = materialise_pipeline("pipeline_learnable").unwrap();
    assert_folder_equals_fixture(&out, &fixture, exact);
    assert_same_tensors(
        "null embedding",
        &out.join(
            "learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors",
        ),
        &fixture.join(
            "learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors",
        ),
        exact,
    );
    replay::replay_reference(&out, "pipeline_learnable", "pipeline");
    replay::replay_reference(&out, "pipeline_learnable", "pipeline_nocfg");
}

#[test]
fn the_ema_copy_is_preferred_and_without_it_the_plain_weights_are_used() {
    let (_dir, out, report) = convert("pretrained_tiny.pth", &tiny_options());
    assert!(report.used_ema && !report.learned_null);
    let fixture = materialise_pipeline("pipeline_empty").unwrap();
    assert_folder_equals_fixture(&out, &fixture, exact);
    replay::replay_reference(&out, "pipeline_empty", "pipeline");

    // `model` holds perturbed denoiser weights and float16 CLIP Linears, as the release does.
    let options = ConvertOptions {
        use_ema: false,
        ..tiny_options()
    };
    let (_dir2, plain, report) = convert("pretrained_tiny.pth", &options);
    assert!(!report.used_ema);
    let got = tensors(&plain.join("transformer/diffusion_pytorch_model.safetensors"));
    let want = tensors(&fixture.join("transformer/diffusion_pytorch_model.safetensors"));
    let moved = got.iter().filter(|(k, t)| {
        let d = ((*t).clone() - &want[*k])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        d.to_scalar::<f32>().unwrap() > 1e-4
    });
    assert!(
        moved.count() > 50,
        "the plain copy should differ from the EMA copy"
    );
    let to_f16 = |k: &str, t: Tensor| {
        let linear = [".self_attn.", ".mlp."].iter().any(|p| k.contains(p));
        if linear {
            t.to_dtype(DType::F16)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
        } else {
            t
        }
    };
    assert_folder_equals_fixture_text_only(&plain, &fixture, to_f16);
}

fn assert_folder_equals_fixture_text_only(
    out: &Path,
    fixture: &Path,
    round: impl Fn(&str, Tensor) -> Tensor,
) {
    assert_same_tensors(
        "text_encoder",
        &out.join("text_encoder/model.safetensors"),
        &fixture.join("text_encoder/model.safetensors"),
        round,
    );
}

#[test]
fn every_separate_vqgan_layout_converts_to_the_fixture_vqvae() {
    let fixture = materialise_pipeline("pipeline_learnable").unwrap();
    for (file, quantizer) in [
        ("taming_gumbel_tiny.pth", OriginalQuantizer::Gumbel),
        ("ithq_vqvae_tiny.pth", OriginalQuantizer::Ema),
        ("ffhq_style_tiny.pth", OriginalQuantizer::Nearest),
    ] {
        let options = ConvertOptions {
            vqvae: Some(original(file)),
            ..tiny_options()
        };
        let (_dir, out, report) = convert("learnable_tiny.pth", &options);
        assert_eq!(report.vqgan.quantizer, quantizer, "{file}");
        assert_eq!(report.vqgan_file, original(file));
        assert_eq!(
            report.remap.is_some(),
            quantizer == OriginalQuantizer::Gumbel,
            "{file}"
        );
        assert_same_tensors(
            file,
            &out.join("vqvae/diffusion_pytorch_model.safetensors"),
            &fixture.join("vqvae/diffusion_pytorch_model.safetensors"),
            exact,
        );
        assert_same_config("vqvae", &out, &fixture);
    }
}

#[test]
fn half_precision_output_loads_and_halves_the_transformer() {
    let options = ConvertOptions {
        dtype: DType::F16,
        ..tiny_options()
    };
    let (_dir, out, _) = convert("learnable_tiny.pth", &options);
    let t = tensors(&out.join("transformer/diffusion_pytorch_model.safetensors"));
    assert!(t.values().all(|t| t.dtype() == DType::F16));
    let v = tensors(&out.join("vqvae/diffusion_pytorch_model.safetensors"));
    assert!(v.values().all(|t| t.dtype() == DType::F32));
    vq_pipeline::VqDiffusionPipeline::from_pretrained(&out, vq_pipeline::LoadOptions::default())
        .unwrap();
}

fn convert_err(checkpoint: &Path, options: &ConvertOptions) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted");
    let e = convert_original(checkpoint, &out, options)
        .unwrap_err()
        .to_string();
    assert!(!out.exists(), "a failed conversion left {}", out.display());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "a failed conversion left files: {leftovers:?}"
    );
    e
}

#[test]
fn wrong_files_are_refused_with_a_message_that_names_them() {
    let options = tiny_options();
    // a VQ-GAN where the checkpoint belongs
    let e = convert_err(&original("taming_gumbel_tiny.pth"), &options);
    assert!(
        e.contains("taming_gumbel_tiny.pth") && e.contains("VQ-GAN"),
        "{e}"
    );
    // a remap table where the checkpoint belongs
    let e = convert_err(&original("remap_24_to_16.pt"), &options);
    assert!(e.contains("bare tensor"), "{e}");
    // not a checkpoint at all
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"this is not a checkpoint").unwrap();
    let e = convert_err(&junk, &options);
    assert!(e.contains("junk.pth"), "{e}");
    // a legacy (pre-zip) torch.save file
    let legacy = dir.path().join("legacy.pth");
    std::fs::write(&legacy, [0x80, 0x02, 0x8a, 0x0a]).unwrap();
    let e = convert_err(&legacy, &options);
    assert!(e.contains("legacy"), "{e}");
    // the output folder exists
    let e = convert_original(&original("learnable_tiny.pth"), dir.path(), &options)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn wrong_hyper_parameters_and_a_missing_remap_are_refused() {
    let cases: [(ConvertOptions, &[&str]); 4] = [
        (
            ConvertOptions {
                heads: Some(3),
                ..tiny_options()
            },
            &["not divisible by 3 attention heads"],
        ),
        (
            ConvertOptions {
                text_heads: None,
                ..tiny_options()
            },
            &["not a multiple of 64"],
        ),
        (
            ConvertOptions {
                vq_norm_groups: 32,
                ..tiny_options()
            },
            &["GroupNorm groups"],
        ),
        (
            ConvertOptions {
                remap: RemapChoice::Released,
                ..tiny_options()
            },
            &["24 codes", "16 classes"],
        ),
    ];
    for (options, wanted) in cases {
        let e = convert_err(&original("learnable_tiny.pth"), &options);
        assert!(wanted.iter().all(|w| e.contains(w)), "{e}");
    }
    // a remap table of the wrong size
    let scratch = tempfile::tempdir().unwrap();
    let shipped = vq_pipeline::CodeRemap::released(8192, 2887, scratch.path())
        .unwrap()
        .unwrap();
    assert_eq!(shipped.full_codes, 8192);
    let e = convert_err(
        &original("learnable_tiny.pth"),
        &ConvertOptions {
            remap: RemapChoice::File(original("ithq_vqvae_tiny.pth")),
            ..tiny_options()
        },
    );
    assert!(
        e.contains("ithq_vqvae_tiny.pth") && e.contains("one bare int64 tensor"),
        "{e}"
    );
}

/// The tensors of `checkpoint` (dotted names, as the reader indexes them) rewritten as a
/// safetensors file after `edit`: the reader accepts either format, so this is how the tests
/// make broken checkpoints without Python.
fn edited_checkpoint(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> PathBuf {
    let file = vq_nn::WeightFile::open(original("learnable_tiny.pth")).unwrap();
    let mut all: HashMap<String, Tensor> = file
        .keys()
        .filter(|k| k.starts_with("model."))
        .map(|k| (k.to_string(), file.tensor(k, &Device::Cpu).unwrap()))
        .collect();
    edit(&mut all);
    let path = dir.join("edited.safetensors");
    candle_core::safetensors::save(&all, &path).unwrap();
    path
}

#[test]
fn a_missing_key_an_unknown_key_and_a_foreign_schedule_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let options = tiny_options();
    let path = edited_checkpoint(dir.path(), |t| {
        t.remove("model.transformer.transformer.to_logits.1.weight");
    });
    let e = convert_err(&path, &options);
    assert!(e.contains("to_logits.1.weight"), "{e}");

    let path = edited_checkpoint(dir.path(), |t| {
        let x = t["model.transformer.transformer.blocks.0.ln2.weight"].clone();
        t.insert(
            "model.transformer.transformer.blocks.0.extra.weight".into(),
            x,
        );
    });
    let e = convert_err(&path, &options);
    assert!(
        e.contains("unrecognised denoiser key model.transformer.transformer.blocks.0.extra.weight"),
        "{e}"
    );

    let path = edited_checkpoint(dir.path(), |t| {
        let x = t["model.transformer.condition_emb.ln_final.bias"].clone();
        t.insert("model.transformer.condition_emb.visual.proj".into(), x);
    });
    let e = convert_err(&path, &options);
    assert!(
        e.contains("unrecognised text-encoder key model.transformer.condition_emb.visual.proj"),
        "{e}"
    );

    let path = edited_checkpoint(dir.path(), |t| {
        let key = "model.transformer.log_cumprod_ct";
        let x = (t[key].clone() * 0.5).unwrap();
        t.insert(key.into(), x);
    });
    let e = convert_err(&path, &options);
    assert!(
        e.contains("log_cumprod_ct does not match the released `alpha1` schedule"),
        "{e}"
    );

    let path = edited_checkpoint(dir.path(), |t| {
        let key = "model.transformer.empty_text_embed";
        let x = t[key].narrow(0, 0, 10).unwrap();
        t.insert(key.into(), x);
    });
    let e = convert_err(&path, &options);
    assert!(
        e.contains("empty_text_embed") && e.contains("[10, 8]"),
        "{e}"
    );

    // no codec in the checkpoint and no VQ-VAE given
    let path = edited_checkpoint(dir.path(), |t| {
        t.retain(|k, _| !k.starts_with("model.content_codec."))
    });
    let e = convert_err(&path, &options);
    assert!(
        e.contains("no VQ-GAN") && e.contains("edited.safetensors"),
        "{e}"
    );
}

#[test]
fn converted_text_models_tokenize_like_the_original() {
    let (_dir, out, _) = convert("learnable_tiny.pth", &tiny_options());
    let tok = clip_text::ClipTokenizer::from_pretrained(&out.join("tokenizer")).unwrap();
    assert_eq!(tok.cleaning(), clip_text::TextCleaning::Original);
    assert_eq!(tok.truncation(), clip_text::Truncation::KeepEot);
    // an over-long prompt keeps its end-of-text token in the last slot
    let long = "a photo of a cat ".repeat(30);
    let ids = tok.encode(&long).unwrap().ids;
    assert_eq!((ids.len(), ids[76]), (77, 49407));
    // a bad marker is refused, naming the file
    let config = out.join("tokenizer/tokenizer_config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"original\"", "\"openai\"")).unwrap();
    let e = clip_text::ClipTokenizer::from_pretrained(&out.join("tokenizer"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tokenizer_config.json") && e.contains("\"openai\""),
        "{e}"
    );
}

/// A YAML config in the original's layout (PyYAML's `!!python/tuple` included) for the tiny
/// text checkpoint, with `n_layer` set to `layers`.
fn tiny_yaml(dir: &Path, layers: usize) -> PathBuf {
    let text = format!(
        "model:\n  params:\n    content_codec_config:\n      params:\n        token_shape:\n        - 4\n        - 4\n    \
         diffusion_config:\n      params:\n        content_emb_config:\n          params:\n            num_embed: 16\n            \
         spatial_size: !!python/tuple\n            - 4\n            - 4\n        diffusion_step: 10\n        \
         transformer_config:\n          params:\n            n_embd: 16\n            n_head: 2\n            n_layer: {layers}\n  \
         target: image_synthesis.modeling.models.dalle.DALLE\n"
    );
    let path = dir.join(format!("tiny_{layers}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_original_yaml_config_supplies_the_heads_and_is_checked_against_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = vq_pipeline::OriginalConfig::from_file(&tiny_yaml(dir.path(), 2)).unwrap();
    assert_eq!(
        (config.heads, config.layers, config.grid, config.classes),
        (Some(2), Some(2), Some(4), Some(16))
    );
    // the config's n_head replaces --heads
    let options = ConvertOptions {
        config: Some(tiny_yaml(dir.path(), 2)),
        heads: None,
        ..tiny_options()
    };
    let (_d, out, _) = convert("learnable_tiny.pth", &options);
    let fixture = materialise_pipeline("pipeline_learnable").unwrap();
    assert_same_config("transformer", &out, &fixture);
    // a config that does not belong to the checkpoint is refused, naming it and the field
    let e = convert_err(
        &original("learnable_tiny.pth"),
        &ConvertOptions {
            config: Some(tiny_yaml(dir.path(), 3)),
            ..tiny_options()
        },
    );
    assert!(
        e.contains("tiny_3.yaml") && e.contains("n_layer is 3 here but 2 in the checkpoint"),
        "{e}"
    );
    // a VQ-GAN config (no model.params) is refused with the reason
    let vq_yaml = dir.path().join("vq.yaml");
    std::fs::write(
        &vq_yaml,
        "model:\n  target: taming.models.vqgan.GumbelVQ\n  base_learning_rate: 1\n",
    )
    .unwrap();
    let e = vq_pipeline::OriginalConfig::from_file(&vq_yaml)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no model.params"), "{e}");
}
