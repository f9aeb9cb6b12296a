//! Training smoke tests on a tiny synthetic image set: losses fall, codebook statistics are
//! reported, checkpoints are atomic and resumable and load as plain model weights.

mod common;

use common::{scratch_dir, tiny_config};
use vq_codebook::checkpoint_path;
use vq_codebook::synthetic_images;
use vq_codebook::{CodebookUpdate, TrainConfig, Trainer, VqModel, evaluate};

fn quick(codebook: CodebookUpdate, steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 4,
        learning_rate: 3e-3,
        codebook,
        dead_code_window: Some(3),
        log_every: 1,
        checkpoint_every: 4,
        seed: 7,
        ..TrainConfig::default()
    }
}

#[test]
fn ema_training_reduces_the_loss_and_reports_usage() {
    let data = synthetic_images(16, 8, 1).unwrap();
    let config = tiny_config();
    let train = quick(TrainConfig::default().codebook, 12);
    let mut trainer = Trainer::new(&config, &train, &candle_core::Device::Cpu).unwrap();
    let before = evaluate(trainer.model(), &data, 8).unwrap();
    let mut logged = 0;
    let logs = trainer.fit(&data, None, |_| logged += 1).unwrap();
    assert_eq!((logs.len(), logged), (12, 12));
    let after = evaluate(trainer.model(), &data, 8).unwrap();
    for log in &logs {
        assert!(log.loss.is_finite() && log.usage.perplexity >= 1.0);
        assert!(log.usage.used_codes <= 16);
    }
    let first: f32 = logs[..3].iter().map(|l| l.reconstruction).sum();
    let last: f32 = logs[9..].iter().map(|l| l.reconstruction).sum();
    assert!(last < first, "reconstruction {first} -> {last}");
    assert!(
        after.psnr > before.psnr,
        "PSNR {} -> {}",
        before.psnr,
        after.psnr
    );
    assert!(after.usage.used_codes > 1, "{:?}", after.usage);
}

#[test]
fn gradient_codebook_training_runs() {
    let data = synthetic_images(8, 8, 2).unwrap();
    let mut trainer = Trainer::new(
        &tiny_config(),
        &quick(CodebookUpdate::Gradient { legacy: true }, 4),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let logs = trainer.fit(&data, None, |_| {}).unwrap();
    assert!(
        logs.iter()
            .all(|l| l.loss.is_finite() && l.codebook.is_finite())
    );
}

#[test]
fn checkpoints_are_atomic_resumable_and_loadable() {
    let data = synthetic_images(8, 8, 3).unwrap();
    let config = tiny_config();
    let dir = scratch_dir("ckpt");
    let path = checkpoint_path(&dir);

    let mut first = Trainer::resume_or_new(
        &config,
        &quick(TrainConfig::default().codebook, 5),
        &path,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(first.step(), 0);
    first.fit(&data, Some(&path), |_| {}).unwrap();
    assert!(path.is_file());
    assert!(!vq_codebook::temp_path(&path).exists());

    // Resume to 8 steps from the 5-step checkpoint.
    let resumed = quick(TrainConfig::default().codebook, 8);
    let mut second =
        Trainer::resume_or_new(&config, &resumed, &path, &candle_core::Device::Cpu).unwrap();
    assert_eq!(second.step(), 5);
    let probe = data.narrow(0, 0, 2).unwrap();
    assert_eq!(
        first
            .model()
            .encode(&probe)
            .unwrap()
            .to_vec3::<u32>()
            .unwrap(),
        second
            .model()
            .encode(&probe)
            .unwrap()
            .to_vec3::<u32>()
            .unwrap()
    );
    let logs = second.fit(&data, Some(&path), |_| {}).unwrap();
    assert_eq!(logs.len(), 3);
    assert_eq!(vq_codebook::Checkpoint::load(&path).unwrap().step, 8);

    // The checkpoint is a plain weight file too, and the export is a diffusers folder.
    let as_weights = VqModel::from_weights(
        &config,
        &path,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let export = dir.join("export");
    second.export_diffusers(&export).unwrap();
    let exported =
        VqModel::from_pretrained(&export, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
    let a = as_weights.encode(&probe).unwrap().to_vec3::<u32>().unwrap();
    let b = exported.encode(&probe).unwrap().to_vec3::<u32>().unwrap();
    assert_eq!(a, b);

    // A different model config is refused.
    let mut other = config.clone();
    other.num_vq_embeddings = 32;
    assert!(Trainer::resume_or_new(&other, &resumed, &path, &candle_core::Device::Cpu).is_err());
}

#[test]
fn a_resumed_run_continues_exactly() {
    // 6 steps straight, and 3 + 3 from a checkpoint: the same losses at every step (the AdamW
    // moments are in the checkpoint).
    let (config, data) = (tiny_config(), synthetic_images(8, 8, 4).unwrap());
    let path = checkpoint_path(&scratch_dir("exact"));
    let cpu = candle_core::Device::Cpu;
    let codebook = TrainConfig::default().codebook;
    let mut straight = Trainer::new(&config, &quick(codebook, 6), &cpu).unwrap();
    let losses = |logs: Vec<vq_codebook::StepLog>| logs.iter().map(|l| l.loss).collect::<Vec<_>>();
    let want = losses(straight.fit(&data, None, |_| {}).unwrap());
    let mut first = Trainer::resume_or_new(&config, &quick(codebook, 3), &path, &cpu).unwrap();
    let mut got = losses(first.fit(&data, Some(&path), |_| {}).unwrap());
    let mut second = Trainer::resume_or_new(&config, &quick(codebook, 6), &path, &cpu).unwrap();
    assert_eq!(second.step(), 3);
    got.extend(losses(second.fit(&data, Some(&path), |_| {}).unwrap()));
    assert_eq!(got, want);
}
