//! The denoiser trainer on the shipped shape-world model's weights (fine-tuning): the loss
//! falls on a fixed batch source, a run resumed from a checkpoint gives the uninterrupted run's
//! weights and losses exactly, a checkpoint being swapped in when the run died is not lost, and
//! the exported parts are the trained weights under their checkpoint keys.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use clip_text::{ClipTextConfig, ClipTokenizer};
use discrete_diffusion::{MaskAndReplace, TimestepSampling, VqDiffusionSchedule};
use vq_train::{
    DenoiserTrainer, DenoiserTrainingConfig, JointModel, Rank, TextConditionedModel, TokenData,
};
use vq_transformer::Transformer2DConfig;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/shape-world")
}

fn model() -> JointModel {
    let dir = model_dir();
    let text = ClipTextConfig::from_pretrained(&dir.join("text_encoder")).unwrap();
    let transformer = Transformer2DConfig::from_file(dir.join("transformer/config.json")).unwrap();
    JointModel::from_weights(
        (&text, &dir.join("text_encoder/model.safetensors")),
        (
            &transformer,
            &dir.join("transformer/diffusion_pytorch_model.safetensors"),
        ),
        Some(&dir.join(
            "learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors",
        )),
        &Device::Cpu,
    )
    .unwrap()
}

fn trainer(config: DenoiserTrainingConfig) -> DenoiserTrainer {
    let dir = model_dir();
    let schedule =
        VqDiffusionSchedule::from_file(dir.join("scheduler/scheduler_config.json")).unwrap();
    let chain = MaskAndReplace::from_scheduler_config(&schedule).unwrap();
    let tokenizer = ClipTokenizer::from_pretrained(&dir.join("tokenizer")).unwrap();
    DenoiserTrainer::new(TextConditionedModel::new(model(), tokenizer), chain, config).unwrap()
}

fn data() -> TokenData {
    // Eight fixed grids of 64 tokens (codes 0..255) with captions.
    let tokens: Vec<u32> = (0..8 * 64).map(|i| ((i * 37) % 256) as u32).collect();
    TokenData {
        tokens: Tensor::from_vec(tokens, (8, 64), &Device::Cpu).unwrap(),
        captions: (0..8).map(|i| format!("a red circle number {i}")).collect(),
    }
}

fn config() -> DenoiserTrainingConfig {
    DenoiserTrainingConfig {
        steps: 6,
        batch_size: 4,
        learning_rate: 1e-3,
        warmup: 2,
        ema_decay: Some(0.9),
        timesteps: TimestepSampling::Uniform,
        caption_dropout: 0.25,
        ..Default::default()
    }
}

fn flat(trainer: &DenoiserTrainer, name: &str) -> Vec<f32> {
    trainer.model().joint.varmap.data().lock().unwrap()[name]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn a_resumed_run_is_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let mut full = trainer(config());
    let losses: Vec<f64> = (0..6)
        .map(|_| full.train_step(&data).unwrap().loss)
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");

    let mut first = trainer(config());
    for _ in 0..3 {
        first.train_step(&data).unwrap();
    }
    let checkpoint = dir.path().join("checkpoint");
    first.save_checkpoint(&checkpoint).unwrap();
    // A second save replaces the first whole; a run killed between the two renames finds the
    // previous checkpoint under `.old`.
    first.save_checkpoint(&checkpoint).unwrap();
    std::fs::rename(&checkpoint, dir.path().join("checkpoint.old")).unwrap();

    let mut resumed = trainer(config());
    assert!(resumed.resume(&checkpoint).unwrap());
    assert_eq!(resumed.step(), 3);
    let rest: Vec<f64> = (0..3)
        .map(|_| resumed.train_step(&data).unwrap().loss)
        .collect();
    assert_eq!(rest, losses[3..], "the resumed losses differ");
    let name = "transformer.transformer_blocks.0.attn1.to_q.weight";
    assert_eq!(flat(&full, name), flat(&resumed, name));
    let ema_full = full.ema().unwrap().weights()[name]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let ema_resumed = resumed.ema().unwrap().weights()[name]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(ema_full, ema_resumed);

    // Another configuration refuses the checkpoint.
    let mut other = trainer(DenoiserTrainingConfig {
        batch_size: 2,
        ..config()
    });
    assert!(matches!(
        other.resume(&checkpoint),
        Err(vq_train::Error::Data { .. })
    ));
}

#[test]
fn exported_parts_hold_the_trained_weights_under_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(DenoiserTrainingConfig {
        steps: 2,
        ..config()
    });
    t.train_step(&data()).unwrap();
    t.model().joint.save_weights(dir.path()).unwrap();
    let exported = candle_core::safetensors::load(
        dir.path()
            .join("transformer/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let key = "transformer_blocks.0.attn1.to_q.weight";
    let saved: Vec<f32> = exported[key]
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(saved, flat(&t, &format!("transformer.{key}")));
    let original = candle_core::safetensors::load(
        model_dir().join("transformer/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(exported.len(), original.len());
    assert_eq!(exported[key].dtype(), original[key].dtype());
    let null = candle_core::safetensors::load(
        dir.path().join(
            "learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors",
        ),
        &Device::Cpu,
    )
    .unwrap();
    assert!(null.contains_key("embeddings"));
}

#[test]
fn a_rank_trains_only_on_its_shard() {
    // The odd examples hold an id no codebook has: any step that draws one fails. Rank 0 of 2
    // (the even examples) trains; rank 1 of 2 and a single process draw them and fail.
    let mut d = data();
    let mut tokens: Vec<u32> = d.tokens.flatten_all().unwrap().to_vec1().unwrap();
    for example in (1..8).step_by(2) {
        tokens[example * 64..(example + 1) * 64].fill(9999);
    }
    d.tokens = Tensor::from_vec(tokens, (8, 64), &Device::Cpu).unwrap();
    let run = |rank: Option<Rank>| {
        let mut t = trainer(config());
        if let Some(r) = rank {
            t = t.with_rank(r);
        }
        (0..4).try_for_each(|_| t.train_step(&d).map(|_| ()))
    };
    run(Some(Rank::new(0, 2).unwrap())).unwrap();
    let err = run(Some(Rank::new(1, 2).unwrap())).unwrap_err().to_string();
    assert!(err.contains("9999"), "{err}");
    assert!(run(None).is_err());
    // A world of one is the plain run, bit for bit.
    let mut plain = trainer(config());
    let mut ranked = trainer(config()).with_rank(Rank::default());
    let clean = data();
    for _ in 0..2 {
        assert_eq!(
            plain.train_step(&clean).unwrap().loss,
            ranked.train_step(&clean).unwrap().loss
        );
    }
    // A rank with no data is refused.
    let mut lonely = trainer(config()).with_rank(Rank::new(9, 10).unwrap());
    let two = TokenData {
        tokens: clean.tokens.narrow(0, 0, 2).unwrap(),
        captions: clean.captions[..2].to_vec(),
    };
    let err = lonely.train_step(&two).unwrap_err().to_string();
    assert!(err.contains("rank 9 of 10 has no data"), "{err}");
}
