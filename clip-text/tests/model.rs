//! The text transformer without golden data: training on a `VarMap` (every parameter receives a
//! gradient; AdamW lowers a loss), round trips through safetensors, inference == training path,
//! and the error messages for bad checkpoints and bad ids.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use clip_text::{Activation, ClipTextConfig, ClipTextModel, Error, l2_normalise_tokens};

fn tiny_config() -> ClipTextConfig {
    ClipTextConfig {
        vocab_size: 50,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        max_position_embeddings: 9,
        hidden_act: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
        initializer_factor: 1.0,
    }
}

fn ids(device: &Device) -> Tensor {
    Tensor::new(
        &[
            [49u32, 3, 7, 11, 2, 0, 0, 0, 0],
            [49, 5, 5, 2, 0, 0, 0, 0, 0],
        ],
        device,
    )
    .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clip-text-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_parameter_gets_a_gradient_and_adamw_lowers_the_loss() -> anyhow_free::Result {
    let device = Device::Cpu;
    let config = tiny_config();
    let varmap = VarMap::new();
    let model = ClipTextModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &config,
    )?;
    let names: Vec<String> = {
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<String> = data.keys().cloned().collect();
        names.sort();
        names
    };
    let expected: Vec<String> = {
        let mut e: Vec<String> = config
            .expected_weights()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        e.sort();
        e
    };
    assert_eq!(
        names, expected,
        "the VarMap holds exactly transformers' keys"
    );

    let ids = ids(&device);
    let target = Tensor::randn(0f32, 1.0, (2, 9, 16), &device)?;
    let loss_of = |model: &ClipTextModel| -> clip_text::Result<Tensor> {
        Ok((model.forward(&ids)? - &target)?.sqr()?.mean_all()?)
    };
    let loss = loss_of(&model)?;
    let grads = loss.backward()?;
    let data = varmap.data().lock().unwrap().clone();
    for (name, var) in &data {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let norm = grad.sqr()?.sum_all()?.to_scalar::<f32>()?;
        // Unused vocabulary rows get zero gradient, but the table as a whole must be reached.
        assert!(norm > 0.0, "{name}: zero gradient");
    }

    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let first = loss.to_scalar::<f32>()?;
    let mut last = first;
    for _ in 0..15 {
        let loss = loss_of(&model)?;
        opt.backward_step(&loss)?;
        last = loss_of(&model)?.to_scalar::<f32>()?;
    }
    println!("loss {first:.4} -> {last:.4}");
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    Ok(())
}

#[test]
fn safetensors_round_trip_matches_the_training_path() -> anyhow_free::Result {
    let device = Device::Cpu;
    let config = tiny_config();
    let varmap = VarMap::new();
    let trained = ClipTextModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &config,
    )?;
    let dir = temp_dir("roundtrip");
    varmap.save(dir.join("model.safetensors"))?;
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config)?)?;
    let loaded = ClipTextModel::from_pretrained(&dir, DType::F32, &device)?;
    let ids = ids(&device);
    let a = trained.forward(&ids)?; // composite LayerNorm and softmax
    let b = loaded.forward(&ids)?; // fused kernels
    let diff = (a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-5, "{diff}");
    assert_eq!(b.dims(), &[2, 9, 16]);

    // Half-precision checkpoints load (computed in f32 on the CPU).
    let half: std::collections::HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().to_dtype(DType::F16).unwrap()))
        .chain([(
            "text_model.embeddings.position_ids".to_string(),
            Tensor::arange(0i64, 9, &device)?.unsqueeze(0)?,
        )])
        .collect();
    candle_core::safetensors::save(&half, dir.join("model.safetensors"))?;
    let from_half = ClipTextModel::from_pretrained(&dir, DType::F16, &device)?;
    assert_eq!(from_half.dtype(), DType::F32);
    let c = from_half.forward(&ids)?;
    let diff = (c - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 2e-2, "f16 weights: {diff}");

    let normed = l2_normalise_tokens(&b)?;
    let norms = normed.sqr()?.sum(2)?.flatten_all()?.to_vec1::<f32>()?;
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn errors_name_the_folder_file_key_and_shapes() -> anyhow_free::Result {
    let device = Device::Cpu;
    let config = tiny_config();
    let dir = temp_dir("errors");
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config)?)?;

    let err = ClipTextModel::from_pretrained(&dir, DType::F32, &device).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Weights(vq_nn::Error::MissingWeightFile { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("model.safetensors, pytorch_model.bin")
            && msg.contains(&*dir.to_string_lossy()),
        "{msg}"
    );

    let missing =
        ClipTextModel::from_pretrained(dir.join("nope"), DType::F32, &device).unwrap_err();
    assert!(missing.to_string().contains("config.json"), "{missing}");

    // Checkpoint made for a wider model.
    let mut wide = config.clone();
    wide.intermediate_size = 40;
    let varmap = VarMap::new();
    ClipTextModel::new(VarBuilder::from_varmap(&varmap, DType::F32, &device), &wide)?;
    varmap.save(dir.join("model.safetensors"))?;
    let err = ClipTextModel::from_pretrained(&dir, DType::F32, &device).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("text_model.encoder.layers.0.mlp.fc1.weight")
            && msg.contains("[40, 16]")
            && msg.contains("[32, 16]"),
        "{msg}"
    );

    // Missing key.
    let mut data = varmap.data().lock().unwrap().clone();
    data.retain(|k, _| k != "text_model.final_layer_norm.bias");
    let tensors: std::collections::HashMap<String, Tensor> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    let msg =
        ClipTextModel::from_weights(&wide, dir.join("model.safetensors"), DType::F32, &device)
            .unwrap_err()
            .to_string();
    assert!(
        msg.contains("missing weight text_model.final_layer_norm.bias"),
        "{msg}"
    );

    // Out-of-vocabulary and over-long ids.
    let varmap = VarMap::new();
    let model = ClipTextModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &config,
    )?;
    let bad = Tensor::new(&[[1u32, 50, 2]], &device)?;
    let err = model.forward(&bad).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TokenOutOfRange {
                id: 50,
                position: 1,
                ..
            }
        ),
        "{err}"
    );
    let negative = Tensor::new(&[[1i64, -3]], &device)?;
    assert!(matches!(
        model.forward(&negative).unwrap_err(),
        Error::TokenOutOfRange { id: -3, .. }
    ));
    let long = Tensor::zeros((1, 10), DType::U32, &device)?;
    assert!(matches!(
        model.forward(&long).unwrap_err(),
        Error::InputShape(_)
    ));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn causal_mask_makes_earlier_positions_independent_of_later_tokens() -> anyhow_free::Result {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = ClipTextModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &tiny_config(),
    )?;
    let a = model.forward(&Tensor::new(&[[1u32, 2, 3, 4]], &device)?)?;
    let b = model.forward(&Tensor::new(&[[1u32, 2, 9, 9]], &device)?)?;
    let head = |t: &Tensor| {
        t.narrow(1, 0, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(head(&a), head(&b));
    let tail = |t: &Tensor| {
        t.narrow(1, 2, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_ne!(tail(&a), tail(&b));
    Ok(())
}

/// Minimal boxed-error result so `?` works on every error type in these tests.
mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;
}
