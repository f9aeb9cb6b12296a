//! `vqd train` end to end on a tiny folder of PNGs with a `metadata.jsonl` (images drawn by the
//! embedded model): a few steps fine-tune it, the exported folder loads and generates; a run
//! killed mid-way and re-run gives exactly the uninterrupted run's loss curve; bad data is
//! named, or skipped and counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn vqd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vqd"));
    command.env(
        "VQD_CACHE",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-cache"),
    );
    command
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "vqd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Eight captioned PNGs in `dir` (the embedded model's drawings of eight prompts).
fn dataset(dir: &Path) {
    let prompts = [
        "a large red circle in the center",
        "a small blue square in the top left",
        "a large green triangle in the bottom right",
        "a small yellow circle at the top",
        "a large magenta square on the left",
        "a small cyan triangle on the right",
        "a large blue circle in the bottom left",
        "a small red square in the top right",
    ];
    let images = dir.join("generated");
    run_ok(
        vqd()
            .arg("generate")
            .args(prompts)
            .args(["--sampler", "strided", "--steps", "10", "--out"])
            .arg(&images),
    );
    let mut metadata = String::new();
    for (i, p) in prompts.iter().enumerate() {
        std::fs::rename(
            images.join(format!("{i:03}.png")),
            dir.join(format!("{i}.png")),
        )
        .unwrap();
        metadata.push_str(&format!(
            "{{\"file_name\": \"{i}.png\", \"text\": \"{p}\"}}\n"
        ));
    }
    std::fs::remove_dir_all(&images).unwrap();
    std::fs::write(dir.join("metadata.jsonl"), metadata).unwrap();
}

fn train(data: &Path, out: &Path) -> Command {
    let mut c = vqd();
    c.arg("train")
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args([
            "--steps",
            "12",
            "--batch-size",
            "2",
            "--checkpoint-every",
            "3",
        ])
        .args(["--validation", "0.25", "--seed", "5", "--sample-every", "6"]);
    c
}

fn checkpoint_step(run: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(run.join("checkpoint/state.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["step"].as_u64()
}

#[test]
fn train_exports_a_model_and_a_killed_run_resumes_exactly() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    dataset(&data);

    // Uninterrupted.
    let a = scratch.path().join("a");
    run_ok(&mut train(&data, &a));
    for file in [
        "config.json",
        "loss.csv",
        "report.json",
        "samples.png",
        "tokens.safetensors",
    ] {
        assert!(a.join(file).is_file(), "no {file}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    assert!(
        report["validation_bits_per_token"]["after"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    // The exported folder is a model `vqd generate` loads.
    let out = scratch.path().join("from-trained.png");
    run_ok(
        vqd()
            .args(["generate", "a large red circle in the center", "--model"])
            .arg(a.join("model"))
            .arg("--out")
            .arg(&out),
    );
    assert!(out.is_file());

    // Killed after its first checkpoint, then re-run: the same curve, step for step.
    let b = scratch.path().join("b");
    let mut child = train(&data, &b).spawn().unwrap();
    let started = Instant::now();
    while checkpoint_step(&b).is_none_or(|s| s < 3) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let stderr = {
        let output = train(&data, &b).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(stderr.contains("resumed"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(a.join("loss.csv")).unwrap(),
        std::fs::read_to_string(b.join("loss.csv")).unwrap(),
        "the resumed run's losses differ from the uninterrupted run's"
    );
    // The token cache was reused (same images, same VQ-VAE).
    assert_eq!(
        std::fs::read(a.join("tokens.key")).unwrap(),
        std::fs::read(b.join("tokens.key")).unwrap()
    );
}

#[test]
fn bad_data_is_named_or_skipped() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    image::RgbImage::from_pixel(32, 32, image::Rgb([200, 0, 0]))
        .save(data.join("red.png"))
        .unwrap();
    std::fs::write(data.join("red.txt"), "a large red square in the center").unwrap();
    std::fs::write(data.join("lonely.txt"), "a caption without its image").unwrap();
    let one_step = |extra: &[&str]| {
        vqd()
            .args([
                "train",
                "--steps",
                "1",
                "--batch-size",
                "1",
                "--validation",
                "0",
            ])
            .args(extra)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(scratch.path().join("run"))
            .output()
            .unwrap()
    };
    let output = one_step(&[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("lonely.txt") && stderr.contains("without an image"),
        "{stderr}"
    );
    let output = one_step(&["--skip-bad-data"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("skipped 1 bad item"), "{stderr}");
}

#[test]
fn a_vq_vae_trains_resumes_exactly_and_a_denoiser_learns_its_tokens() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-train-vqvae");
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    dataset(&data);
    let vqvae = |out: &Path, steps: &str| {
        let mut c = vqd();
        c.args(["train", "vqvae", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args([
                "--steps",
                steps,
                "--batch-size",
                "4",
                "--checkpoint-every",
                "2",
            ])
            .args(["--validation", "0.25", "--seed", "3"]);
        c
    };
    // Straight to 6 steps, and 4 then 6: the same log, the same weights.
    let (a, b) = (root.join("a"), root.join("b"));
    run_ok(&mut vqvae(&a, "6"));
    run_ok(&mut vqvae(&b, "4"));
    let resumed = run_ok(&mut vqvae(&b, "6"));
    let log = |run: &Path| std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log(&a), log(&b), "resuming changed the run: {resumed}");
    assert_eq!(log(&a).lines().count(), 1 + 6);
    let weights =
        |run: &Path| std::fs::read(run.join("vqvae/diffusion_pytorch_model.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b));
    for file in [
        "config.json",
        "loss_curve.png",
        "reconstructions.png",
        "report.json",
        "vqvae/config.json",
    ] {
        assert!(a.join(file).is_file(), "{file} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    assert!(
        report["validation_psnr_db"].as_f64().unwrap() > 0.0,
        "{report}"
    );

    // The denoiser on the new VQ-VAE's tokens; the export carries that VQ-VAE and generates.
    let denoiser = root.join("denoiser");
    run_ok(
        vqd()
            .arg("train")
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&denoiser)
            .arg("--vqvae")
            .arg(a.join("vqvae"))
            .args(["--steps", "2", "--batch-size", "2", "--sample-every", "0"]),
    );
    assert_eq!(
        weights(&a),
        std::fs::read(denoiser.join("model/vqvae/diffusion_pytorch_model.safetensors")).unwrap()
    );
    run_ok(
        vqd()
            .args(["generate", "a red circle", "--sampler", "fast", "--model"])
            .arg(denoiser.join("model"))
            .arg("--out")
            .arg(root.join("drawn.png")),
    );

    // A codebook the transformer cannot predict is refused, naming both sizes.
    let mut architecture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("vqvae/config.json")).unwrap())
            .unwrap();
    architecture["num_vq_embeddings"] = 16.into();
    let arch = root.join("small.json");
    std::fs::write(&arch, architecture.to_string()).unwrap();
    let small = root.join("small");
    run_ok(vqvae(&small, "1").arg("--architecture").arg(&arch));
    let out = vqd()
        .arg("train")
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(root.join("mismatch"))
        .arg("--vqvae")
        .arg(small.join("vqvae"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("has 16 codes") && err.contains("predicts 256 classes"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_denoiser_trains_from_scratch_and_a_config_that_does_not_fit_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    dataset(&data);
    // a small new denoiser for the embedded model's VQ-VAE (256 codes, 8×8 tokens) and its
    // 64-wide text encoder
    let config = serde_json::json!({
        "num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 1,
        "cross_attention_dim": 64, "num_vector_embeds": 257, "sample_size": 8,
        "num_embeds_ada_norm": 100, "activation_fn": "geglu-approximate", "attention_bias": true,
    });
    let config_path = scratch.path().join("denoiser.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let run = scratch.path().join("run");
    let mut command = train(&data, &run);
    command.arg("--denoiser-config").arg(&config_path);
    run_ok(&mut command);
    let exported: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("model/transformer/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            exported["num_layers"].as_u64(),
            exported["attention_head_dim"].as_u64()
        ),
        (Some(1), Some(16))
    );
    let log = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert_eq!(log.lines().count(), 13, "{log}");
    let png = scratch.path().join("x.png");
    run_ok(
        vqd()
            .args(["generate", "a red circle", "--steps", "4", "--model"])
            .arg(run.join("model"))
            .arg("--out")
            .arg(&png),
    );
    assert!(png.is_file());
    // the same seed initialises the same network
    let base = run.join("base/transformer/diffusion_pytorch_model.safetensors");
    let again = scratch.path().join("again.safetensors");
    vq_train::write_fresh_transformer(
        &vq_transformer::Transformer2DConfig::from_file(&config_path).unwrap(),
        5,
        &again,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&base).unwrap(),
        std::fs::read(&again).unwrap()
    );

    // a config for another codebook, grid and text width: every mismatch is named
    let bad = serde_json::json!({
        "num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 1,
        "cross_attention_dim": 32, "num_vector_embeds": 100, "sample_size": 4,
        "num_embeds_ada_norm": 10, "activation_fn": "geglu-approximate", "attention_bias": true,
    });
    std::fs::write(&config_path, bad.to_string()).unwrap();
    let mut command = train(&data, &scratch.path().join("bad-run"));
    command.arg("--denoiser-config").arg(&config_path);
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "num_vector_embeds is Some(100)",
        "sample_size is Some(4)",
        "cross_attention_dim is Some(32)",
        "num_embeds_ada_norm is Some(10)",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}

#[test]
fn class_conditional_and_unconditional_denoisers_train_export_and_generate() {
    let scratch = tempfile::tempdir().unwrap();
    let flat = scratch.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    dataset(&flat);
    // class folders: the circles and the squares of the flat set
    let classes = scratch.path().join("classes");
    for (class, files) in [("circle", [0, 3, 6]), ("square", [1, 4, 7])] {
        std::fs::create_dir_all(classes.join(class)).unwrap();
        for i in files {
            std::fs::copy(
                flat.join(format!("{i}.png")),
                classes.join(class).join(format!("{i}.png")),
            )
            .unwrap();
        }
    }
    // a small class network for the embedded model's VQ-VAE (256 codes, 8×8 tokens)
    let config = |labels: usize| {
        let name = if labels > 0 {
            "Condition2ImageTransformer"
        } else {
            "UnCondition2ImageTransformer"
        };
        serde_json::json!({
            "_class_name": name, "num_layers": 1, "width": 32, "num_attention_heads": 2,
            "num_vector_embeds": 257, "num_embeds_ada_norm": 100, "num_labels": labels,
            "class_table_rows": if labels > 0 { labels + 1 } else { 0 },
            "position_table": [8, 8], "sample_size": 8, "mlp_hidden_times": 2,
        })
    };
    let config_path = scratch.path().join("class.json");
    std::fs::write(&config_path, config(2).to_string()).unwrap();
    let run = scratch.path().join("class-run");
    let mut command = train(&classes, &run);
    command.arg("--denoiser-config").arg(&config_path);
    let report = run_ok(&mut command);
    assert!(report.contains("\"classes\""), "{report}");
    let names: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(run.join("model/class_names.json")).unwrap())
            .unwrap();
    assert_eq!(names, ["circle", "square"]);
    assert_eq!(
        std::fs::read_to_string(run.join("loss.csv"))
            .unwrap()
            .lines()
            .count(),
        13
    );
    assert!(run.join("samples.png").is_file() && run.join("samples/step-000012.png").is_file());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert!(
        report["validation_bits_per_token"]["after"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let images = scratch.path().join("class");
    run_ok(
        vqd()
            .args([
                "generate", "--class", "circle", "--class", "none", "--steps", "4",
            ])
            .args(["--guidance-scale", "2", "--model"])
            .arg(run.join("model"))
            .arg("--out")
            .arg(&images),
    );
    assert!(images.join("000.png").is_file() && images.join("001.png").is_file());
    // a re-run finds the finished checkpoint and trains no further
    let mut again = train(&classes, &run);
    again.arg("--denoiser-config").arg(&config_path);
    let report = run_ok(&mut again);
    assert!(report.contains("\"steps_this_session\": 0"), "{report}");

    // class folders that do not match num_labels are named
    std::fs::write(&config_path, config(3).to_string()).unwrap();
    let mut command = train(&classes, &scratch.path().join("bad-run"));
    command.arg("--denoiser-config").arg(&config_path);
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 class folders") && stderr.contains("num_labels 3"),
        "{stderr}"
    );

    // unconditional: images without captions or classes
    std::fs::write(&config_path, config(0).to_string()).unwrap();
    let run = scratch.path().join("plain-run");
    let mut command = train(&flat, &run);
    command.arg("--denoiser-config").arg(&config_path);
    run_ok(&mut command);
    assert!(!run.join("model/class_names.json").exists());
    let index = std::fs::read_to_string(run.join("model/transformer/config.json")).unwrap();
    assert!(index.contains("UnCondition2ImageTransformer"), "{index}");
    let png = scratch.path().join("plain.png");
    run_ok(
        vqd()
            .args(["generate", "--class", "none", "--steps", "4", "--model"])
            .arg(run.join("model"))
            .arg("--out")
            .arg(&png),
    );
    assert!(png.is_file());
    let output = vqd()
        .args([
            "generate",
            "--class",
            "none",
            "--guidance-scale",
            "3",
            "--model",
        ])
        .arg(run.join("model"))
        .arg("--out")
        .arg(scratch.path().join("guided.png"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no condition to guide by"), "{stderr}");
}
