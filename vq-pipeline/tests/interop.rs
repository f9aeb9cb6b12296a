//! Interoperability of what `vqd train` exports: a tiny model fine-tuned and exported by
//! `vqd train` (committed in `tests/data/exported_tiny`) was loaded component by component with
//! diffusers / transformers and sampled by diffusers' `VQDiffusionPipeline` with recorded Gumbel
//! uniforms (`reference/check_exported.py`); replaying those uniforms here must give diffusers'
//! tokens after every step, and its image within 1e-4.
//!
//! To regenerate the folder: `cargo test -p vq-pipeline --test interop -- --ignored` (fine-tunes
//! the tiny fixture pipeline for a few steps on eight 8×8 PNGs it draws itself), then
//! `"$REFERENCE_PYTHON" reference/check_exported.py`.

mod replay;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The committed export, relative to the fixtures folder (how the replay helper reads it).
const EXPORTED: &str = "../vq-pipeline/tests/data/exported_tiny";

fn exported_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exported_tiny")
}

#[test]
fn an_exported_model_samples_exactly_as_diffusers_does() {
    replay::replay_reference(&exported_dir(), EXPORTED, "guided");
    replay::replay_reference(&exported_dir(), EXPORTED, "unguided");
}

#[test]
fn the_exported_folder_is_what_vqd_train_writes() {
    let dir = exported_dir();
    for component in [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "tokenizer/vocab.json",
        "transformer/config.json",
        "vqvae/config.json",
        "learned_classifier_free_sampling_embeddings/config.json",
        "README.md",
    ] {
        assert!(dir.join(component).is_file(), "{component} missing");
    }
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(card.contains("vqd train"), "{card}");
    // Trained: the denoiser's weights moved away from the fixture it started from.
    let weights = |root: &Path| {
        candle_core::safetensors::load(
            root.join("transformer/diffusion_pytorch_model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap()
    };
    let start = reference_fixtures::fixtures_dir().join("pipeline_learnable");
    let (before, after) = (weights(&start), weights(&dir));
    assert_eq!(before.len(), after.len());
    let moved = before.iter().filter(|(name, b)| {
        let a = &after[*name];
        let diff = (a - *b).unwrap().abs().unwrap().max_all().unwrap();
        diff.to_scalar::<f32>().unwrap() > 1e-4
    });
    assert!(
        moved.count() > before.len() / 2,
        "the export is the untrained fixture"
    );
}

fn vqd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vqd"));
    command.env(
        "VQD_CACHE",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-cache"),
    );
    command
}

fn run_ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "vqd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "regenerates tests/data/exported_tiny; then run reference/check_exported.py"]
fn regenerate_the_exported_model() {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("interop-export");
    let _ = std::fs::remove_dir_all(&scratch);
    let base = reference_fixtures::materialise_pipeline("pipeline_learnable").unwrap();
    let data = scratch.join("data");
    let prompts = [
        "a red square",
        "a blue circle",
        "a green triangle",
        "a yellow square on the left",
        "a small red circle",
        "a large blue square",
        "a cyan triangle at the top",
        "a magenta circle on the right",
    ];
    run_ok(
        vqd()
            .arg("generate")
            .args(prompts)
            .args(["--model"])
            .arg(&base)
            .args(["--sampler", "full", "--seed", "3", "--out"])
            .arg(&data),
    );
    let mut metadata = String::new();
    for (i, p) in prompts.iter().enumerate() {
        metadata.push_str(&format!(
            "{{\"file_name\": \"{i:03}.png\", \"text\": \"{p}\"}}\n"
        ));
    }
    let _ = std::fs::remove_file(data.join("generation.json"));
    std::fs::write(data.join("metadata.jsonl"), metadata).unwrap();
    let run = scratch.join("run");
    run_ok(
        vqd()
            .arg("train")
            .arg("--model")
            .arg(&base)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&run)
            .args([
                "--steps",
                "6",
                "--batch-size",
                "2",
                "--learning-rate",
                "0.01",
            ])
            .args(["--validation", "0.25", "--seed", "1", "--sample-every", "0"]),
    );
    let target = exported_dir();
    let _ = std::fs::remove_dir_all(&target);
    copy_tree(&run.join("model"), &target);
    // The model card names the scratch folders it came from; the committed copy names them
    // by what they were.
    let card = std::fs::read_to_string(target.join("README.md")).unwrap();
    let card = card
        .replace(&base.display().to_string(), "fixtures/pipeline_learnable")
        .replace(
            &data.display().to_string(),
            "eight 8x8 PNGs that pipeline drew (tests/interop.rs)",
        )
        .replace(&run.display().to_string(), "the run folder");
    std::fs::write(target.join("README.md"), card).unwrap();
    let _ = std::fs::remove_dir_all(base);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}
