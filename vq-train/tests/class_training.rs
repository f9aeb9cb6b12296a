//! The denoiser trainer on the other two kinds of data: class-conditional
//! (`Condition2ImageTransformer` on token grids + labels, with label dropout to a learned null
//! row) and unconditional (`UnCondition2ImageTransformer` on token grids alone). The loss
//! falls, a resumed run is the uninterrupted run, the same seed gives the same fresh network,
//! the export is a class-model folder with the trained weights, and misuse is refused with
//! the setting named.

use candle_core::{DType, Device, Tensor};
use discrete_diffusion::{MaskAndReplace, TimestepSampling, VqDiffusionSchedule};
use vq_train::{
    ClassTokenData, Condition2ImageModel, DenoiserTrainer, DenoiserTrainingConfig,
    UnconditionalTokenData, export_class_pipeline,
};
use vq_transformer::Condition2ImageConfig;

/// 16 codes (+ mask) on a 4×4 grid, 10 timesteps; `labels = 0`: unconditional.
fn config(labels: usize) -> Condition2ImageConfig {
    serde_json::from_value(serde_json::json!({
        "num_layers": 2, "width": 16, "num_attention_heads": 2, "num_vector_embeds": 17,
        "num_embeds_ada_norm": 10, "num_labels": labels,
        "class_table_rows": if labels > 0 { labels + 1 } else { 0 },
        "position_table": [4, 4], "sample_size": 4, "mlp_hidden_times": 2,
    }))
    .unwrap()
}

fn schedule() -> VqDiffusionSchedule {
    VqDiffusionSchedule {
        num_vec_classes: Some(17),
        num_train_timesteps: 10,
        ..VqDiffusionSchedule::default()
    }
}

fn chain() -> MaskAndReplace {
    MaskAndReplace::from_scheduler_config(&schedule()).unwrap()
}

/// Two patterns, each the data of one class.
fn tokens() -> (Tensor, Vec<usize>) {
    let grids: Vec<u32> = (0..8)
        .flat_map(|i| (0..16).map(move |n| if i % 2 == 0 { n % 4 } else { 15 - n % 3 }))
        .collect();
    (
        Tensor::from_vec(grids, (8, 16), &Device::Cpu).unwrap(),
        (0..8).map(|i| i % 2).collect(),
    )
}

fn training(steps: u64, dropout: f64) -> DenoiserTrainingConfig {
    DenoiserTrainingConfig {
        steps,
        batch_size: 4,
        learning_rate: 3e-3,
        warmup: 2,
        timesteps: TimestepSampling::Uniform,
        caption_dropout: dropout,
        ema_decay: Some(0.9),
        seed: 7,
        ..Default::default()
    }
}

fn trainer(labels: usize, steps: u64, dropout: f64) -> DenoiserTrainer<Condition2ImageModel> {
    let model = Condition2ImageModel::new(&config(labels), 1, &Device::Cpu).unwrap();
    DenoiserTrainer::new(model, chain(), training(steps, dropout)).unwrap()
}

fn weights(t: &DenoiserTrainer<Condition2ImageModel>) -> Vec<f32> {
    flat(t.model())
}

/// Every weight of `m`, in name order.
fn flat(m: &Condition2ImageModel) -> Vec<f32> {
    m.named_vars()
        .iter()
        .flat_map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn a_class_model_and_an_unconditional_model_learn_their_data() {
    let (grids, labels) = tokens();
    let class_data = ClassTokenData {
        tokens: grids.clone(),
        labels,
    };
    let mut class = trainer(2, 60, 0.2);
    let losses: Vec<f64> = (0..60)
        .map(|_| class.train_step(&class_data).unwrap().loss)
        .collect();
    assert!(
        mean(&losses[50..]) < 0.7 * mean(&losses[..10]),
        "class model: {:.3} → {:.3}",
        mean(&losses[..10]),
        mean(&losses[50..])
    );
    let mut plain = trainer(0, 60, 0.0);
    let data = UnconditionalTokenData { tokens: grids };
    let losses: Vec<f64> = (0..60)
        .map(|_| plain.train_step(&data).unwrap().loss)
        .collect();
    assert!(
        mean(&losses[50..]) < 0.7 * mean(&losses[..10]),
        "unconditional model: {:.3} → {:.3}",
        mean(&losses[..10]),
        mean(&losses[50..])
    );
}

#[test]
fn a_resumed_class_run_is_the_uninterrupted_run() {
    let (grids, labels) = tokens();
    let data = ClassTokenData {
        tokens: grids,
        labels,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut whole = trainer(2, 6, 0.25);
    let whole_losses: Vec<f64> = (0..6)
        .map(|_| whole.train_step(&data).unwrap().loss)
        .collect();

    let mut first = trainer(2, 6, 0.25);
    for _ in 0..3 {
        first.train_step(&data).unwrap();
    }
    first
        .save_checkpoint(&dir.path().join("checkpoint"))
        .unwrap();
    drop(first);
    // A new process would build the network from the same seed; the checkpoint overwrites it.
    let mut second = trainer(2, 6, 0.25);
    assert!(second.resume(&dir.path().join("checkpoint")).unwrap());
    assert_eq!(second.step(), 3);
    let resumed: Vec<f64> = (0..3)
        .map(|_| second.train_step(&data).unwrap().loss)
        .collect();
    assert_eq!(resumed, whole_losses[3..]);
    assert_eq!(weights(&second), weights(&whole));
}

#[test]
fn the_same_seed_gives_the_same_fresh_network() {
    let a = Condition2ImageModel::new(&config(3), 5, &Device::Cpu).unwrap();
    let b = Condition2ImageModel::new(&config(3), 5, &Device::Cpu).unwrap();
    let c = Condition2ImageModel::new(&config(3), 6, &Device::Cpu).unwrap();
    let flat = |m: &Condition2ImageModel| -> Vec<f32> {
        m.named_vars()
            .iter()
            .flat_map(|(_, v)| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a), flat(&c));
    let weights = a.weights().unwrap();
    let ln = weights["blocks.0.ln1.emb.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let std = (ln.iter().map(|x| x * x).sum::<f32>() / ln.len() as f32).sqrt();
    assert!(
        (0.01..0.03).contains(&std),
        "N(0, 0.02) tables, got std {std}"
    );
    assert_eq!(
        weights["blocks.1.ln2.linear.bias"]
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
}

#[test]
fn the_export_is_a_class_model_folder_with_the_trained_weights() {
    let (grids, labels) = tokens();
    let data = ClassTokenData {
        tokens: grids,
        labels,
    };
    let mut t = trainer(2, 3, 0.0);
    for _ in 0..3 {
        t.train_step(&data).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let vqvae = dir.path().join("vq");
    std::fs::create_dir_all(&vqvae).unwrap();
    std::fs::write(vqvae.join("config.json"), "{}").unwrap();
    std::fs::write(vqvae.join("diffusion_pytorch_model.safetensors"), "weights").unwrap();
    let out = dir.path().join("model");
    let names = vec!["stripes".to_string(), "ramps".to_string()];
    export_class_pipeline(t.model(), &schedule(), &vqvae, &names, &out).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model_index.json")).unwrap())
            .unwrap();
    assert_eq!(index["_class_name"], "VQDiffusionClassPipeline");
    assert_eq!(index["transformer"][1], "Condition2ImageTransformer");
    let written: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(out.join("class_names.json")).unwrap())
            .unwrap();
    assert_eq!(written, names);
    let mut config = Condition2ImageConfig::from_file(out.join("transformer/config.json")).unwrap();
    assert_eq!(config.unknown["_class_name"], "Condition2ImageTransformer");
    config.unknown.clear();
    assert_eq!(config, *t.model().config());
    let saved = candle_core::safetensors::load(
        out.join("transformer/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    for (name, var) in t.model().named_vars() {
        let diff = (&saved[&name] - var.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
        assert_eq!(saved[&name].dtype(), DType::F32);
    }
    // Re-loading the export gives the same model.
    let again = Condition2ImageModel::from_weights(
        &config,
        &out.join("transformer/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(again.named_vars().len(), t.model().named_vars().len());
    let e = export_class_pipeline(t.model(), &schedule(), &vqvae, &names[..1], &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 class names for a model of 2 classes"), "{e}");
}

#[test]
fn misuse_is_refused_naming_the_setting() {
    let unconditional = || Condition2ImageModel::new(&config(0), 1, &Device::Cpu).unwrap();
    let e = DenoiserTrainer::new(unconditional(), chain(), training(3, 0.1))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("caption_dropout 0.1") && e.contains("learned null"),
        "{e}"
    );
    let e = DenoiserTrainer::new(
        unconditional(),
        chain(),
        DenoiserTrainingConfig {
            freeze_text_encoder: true,
            ..training(3, 0.0)
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("no text encoder"), "{e}");
    let (grids, labels) = tokens();
    let mut t = DenoiserTrainer::new(unconditional(), chain(), training(3, 0.0)).unwrap();
    let e = t
        .train_step(&ClassTokenData {
            tokens: grids.clone(),
            labels: labels.clone(),
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("unconditional model"), "{e}");
    let mut class = trainer(2, 3, 0.0);
    let e = class
        .train_step(&ClassTokenData {
            tokens: grids.clone(),
            labels: vec![5; 8],
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("class label 5 is out of range"), "{e}");
    let e = class
        .train_step(&ClassTokenData {
            tokens: grids,
            labels: vec![0; 3],
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("8 token grids for 3 conditions"), "{e}");
    let e = Condition2ImageModel::from_weights(
        &config(2),
        std::path::Path::new("missing.safetensors"),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("missing.safetensors"), "{e}");
}
