//! Weight loading: both attention key spellings, conv-shaped projections, half-precision files,
//! diffusers folders, and the errors for missing files/keys and shape mismatches.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{max_diff, scratch_dir, seeded_model, tensors, tiny_config, uniform};
use vq_codebook::{AttentionKeys, Error, VqModel};

fn tokens() -> Tensor {
    let ids: Vec<u32> = (0..2 * 4 * 4).map(|i| (i * 7 % 16) as u32).collect();
    Tensor::from_vec(ids, (2, 4, 4), &Device::Cpu).unwrap()
}

fn legacy_name(key: &str) -> String {
    key.replace(".to_q.", ".query.")
        .replace(".to_k.", ".key.")
        .replace(".to_v.", ".value.")
        .replace(".to_out.0.", ".proj_attn.")
}

#[test]
fn legacy_attention_keys_and_conv_shaped_weights_load_identically() {
    let config = tiny_config();
    let (varmap, model) = seeded_model(&config, 1);
    // The reference is the same weights loaded under their current names: a model built on a
    // training VarMap runs the differentiable ops, which round differently from the fused
    // inference kernels (by ~1e-6).
    let current_dir = scratch_dir("current");
    let current_path = current_dir.join("current.safetensors");
    candle_core::safetensors::save(&tensors(&varmap), &current_path).unwrap();
    let current = VqModel::from_weights(
        &config,
        &current_path,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let want = current.decode_tokens(&tokens()).unwrap();
    assert!(max_diff(&model.decode_tokens(&tokens()).unwrap(), &want) < 1e-4);
    let mut legacy = HashMap::new();
    for (key, t) in tensors(&varmap) {
        let renamed = legacy_name(&key);
        // Half of the legacy projections stored as 1×1 convolutions, like the original AttnBlock.
        let t = if renamed != key && renamed.contains(".query.weight") {
            let (o, i) = t.dims2().unwrap();
            t.reshape((o, i, 1, 1)).unwrap()
        } else {
            t
        };
        legacy.insert(renamed, t);
    }
    assert!(legacy.contains_key("decoder.mid_block.attentions.0.proj_attn.weight"));
    let dir = scratch_dir("legacy");
    let path = dir.join("legacy.safetensors");
    candle_core::safetensors::save(&legacy, &path).unwrap();
    let loaded = VqModel::from_weights(
        &config,
        &path,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        loaded.decoder().mid_block().attention().unwrap().keys(),
        AttentionKeys::Legacy
    );
    assert_eq!(
        model.decoder().mid_block().attention().unwrap().keys(),
        AttentionKeys::Current
    );
    assert_eq!(
        max_diff(&loaded.decode_tokens(&tokens()).unwrap(), &want),
        0.0
    );
}

#[test]
fn half_precision_files_are_computed_in_f32() {
    let config = tiny_config();
    let (varmap, model) = seeded_model(&config, 2);
    let dir = scratch_dir("half");
    for dtype in [DType::F16, DType::BF16] {
        let half: HashMap<String, Tensor> = tensors(&varmap)
            .into_iter()
            .map(|(k, t)| (k, t.to_dtype(dtype).unwrap()))
            .collect();
        let path = dir.join(format!("{dtype:?}.safetensors"));
        candle_core::safetensors::save(&half, &path).unwrap();
        let loaded = VqModel::from_weights(
            &config,
            &path,
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert_eq!(loaded.quantiser().embedding().dtype(), DType::F32);
        let out = loaded.decode_tokens(&tokens()).unwrap();
        assert_eq!(out.dtype(), DType::F32);
        let diff = max_diff(&out, &model.decode_tokens(&tokens()).unwrap());
        assert!(diff < 0.1, "{dtype:?}: {diff}");
    }
}

#[test]
fn diffusers_folder_and_pipeline_root_load() {
    let config = tiny_config();
    let (varmap, model) = seeded_model(&config, 3);
    let root = scratch_dir("folder");
    let dir = root.join("vqvae");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_json_string()).unwrap();
    varmap
        .save(dir.join("diffusion_pytorch_model.safetensors"))
        .unwrap();
    let images = uniform(&[1, 3, 8, 8], 9);
    let want = model.encode(&images).unwrap();
    for path in [&dir, &root] {
        let loaded =
            VqModel::from_pretrained(path, candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap();
        let got = loaded.encode(&images).unwrap();
        assert_eq!(
            got.to_vec3::<u32>().unwrap(),
            want.to_vec3::<u32>().unwrap()
        );
    }
}

#[test]
fn weight_errors_name_file_key_and_shapes() {
    let config = tiny_config();
    let (varmap, _) = seeded_model(&config, 4);
    let dir = scratch_dir("errors");

    let err = VqModel::from_pretrained(&dir, candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap_err();
    assert!(
        matches!(err, Error::ConfigParse { .. } | Error::Io { .. }),
        "{err}"
    );
    std::fs::write(dir.join("config.json"), config.to_json_string()).unwrap();
    let err = VqModel::from_pretrained(&dir, candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap_err();
    assert!(
        matches!(err, Error::Weights(vq_nn::Error::MissingWeightFile { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("diffusion_pytorch_model.safetensors")
    );

    let path = dir.join("diffusion_pytorch_model.safetensors");
    let mut all = tensors(&varmap);
    all.remove("decoder.conv_out.bias");
    candle_core::safetensors::save(&all, &path).unwrap();
    let err = VqModel::from_pretrained(&dir, candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap_err();
    match &err {
        Error::Weights(vq_nn::Error::MissingWeight { key, file, .. }) => {
            assert_eq!(key, "decoder.conv_out.bias");
            assert_eq!(file, &path);
        }
        other => panic!("{other}"),
    }

    let mut bigger = config.clone();
    bigger.num_vq_embeddings = 32;
    varmap.save(&path).unwrap();
    let err = VqModel::from_weights(
        &bigger,
        &path,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap_err();
    match &err {
        Error::Weights(vq_nn::Error::WeightShape {
            key,
            expected,
            found,
            ..
        }) => {
            assert_eq!(key, "quantize.embedding.weight");
            assert_eq!(expected, &[32, 4]);
            assert_eq!(found, &[16, 4]);
        }
        other => panic!("{other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("quantize.embedding.weight") && message.contains("[16, 4]"),
        "{message}"
    );
}
