//! The `vqd` command line end to end on the embedded default model (no `--model`): a PNG and its
//! JSON sidecar are written, the same seed reproduces the same bytes, and bad input fails with a
//! message instead of a panic.

use std::path::PathBuf;
use std::process::Command;

fn vqd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vqd"));
    // The embedded model unpacks into the build's scratch space, not the user's cache.
    command.env(
        "VQD_CACHE",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-cache"),
    );
    command
}

/// Runs `command`, asserting it succeeds.
fn run_ok(command: &mut Command) -> std::process::Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "vqd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command`, asserting it fails; its stderr.
fn run_err(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(!output.status.success(), "vqd should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A JSON file's content.
fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vqd-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn generate_on_the_embedded_model_is_reproducible() {
    let dir = scratch("default");
    let run = |name: &str| {
        let out = dir.join(name);
        let status = vqd()
            .args([
                "generate",
                "a red circle in the top left",
                "--seed",
                "7",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "vqd failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        out
    };
    let a = run("a.png");
    let b = run("b.png");
    let (pa, pb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(pa, pb, "same seed, different PNG");
    let image = image::load_from_memory(&pa).unwrap();
    assert_eq!((image.width(), image.height()), (32, 32));
    let sidecar = std::fs::read_to_string(a.with_extension("json")).unwrap();
    assert!(sidecar.contains("embedded:"), "{sidecar}");
    // 8-bit projections: the sidecar records them.
    let int8 = dir.join("int8.png");
    run_ok(
        vqd()
            .args([
                "generate",
                "a red circle in the top left",
                "--int8",
                "--out",
            ])
            .arg(&int8),
    );
    let sidecar = read_json(&int8.with_extension("json"));
    assert_eq!(sidecar["model"]["dtype"], "F32+INT8", "{sidecar}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = scratch("bad");
    for (args, expected) in [
        (vec!["--guidance-scale=-1"], "guidance"),
        (vec!["--steps", "0"], "step"),
        (vec!["--model", "/definitely/not/here"], "not"),
        // Hardening regressions: each names the option at fault and says what to do.
        (
            vec!["--seed", "-1"],
            "invalid value '-1' for '--seed <seed>': invalid digit",
        ),
        (
            vec!["--sampler", "full", "--steps", "10"],
            "--steps has no effect with the full sampler",
        ),
        (
            vec!["--null", "empty-prompt"],
            "--null has no effect without guidance",
        ),
        (
            vec!["--unmask-per-call", "3"],
            "--unmask-per-call has no effect with the diffusers sampler",
        ),
        (
            vec!["--prior-weight", "2"],
            "--prior-weight has no effect with the diffusers sampler",
        ),
        (
            vec!["--sampler", "halton", "--threshold", "0.5"],
            "--threshold has no effect with the halton sampler",
        ),
        (
            vec!["--sampler", "threshold", "--threshold", "1.5"],
            "threshold must lie in (0, 1], got 1.5",
        ),
        (
            vec!["--sampler", "maskgit", "--unmask-schedule", "square"],
            "unknown unmasking schedule",
        ),
        (
            vec!["--sampler", "first-hitting", "--steps", "5"],
            "--steps has no effect with the first-hitting sampler",
        ),
        (
            vec!["--revision", "v1"],
            "--revision v1 has no effect on the embedded model",
        ),
        (vec!["--batch-size", "0"], "--batch-size must be at least 1"),
        (vec!["--num-images", "9223372036854775808"], "overflows"),
        (
            vec!["--hub-timeout", "0"],
            "--hub-timeout must be a positive",
        ),
    ] {
        let output = vqd()
            .args(["generate", "a blue square", "a red circle"])
            .arg("--out")
            .arg(dir.join("x"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_installed_binary_finds_the_embedded_model_from_anywhere() {
    // A copy of the binary outside the repository, run from an unrelated directory: the model
    // comes from the binary itself (unpacked into the cache folder), not from the source tree.
    let dir = scratch("installed");
    let binary = dir.join("vqd");
    std::fs::copy(env!("CARGO_BIN_EXE_vqd"), &binary).unwrap();
    let cache = dir.join("cache");
    let output = Command::new(&binary)
        .current_dir(&dir)
        .env("VQD_CACHE", &cache)
        .env_remove("VQD_DEFAULT_MODEL")
        .args([
            "generate",
            "a green square",
            "--seed",
            "3",
            "--out",
            "out.png",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.join("out.png").is_file());
    let unpacked: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(unpacked.len(), 1, "one unpacked model folder");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_paths_are_refused_before_the_model_loads() {
    let dir = scratch("outputs");
    let file = dir.join("plain");
    std::fs::write(&file, "x").unwrap();
    for (out, expected) in [
        (
            dir.join("x.jpg"),
            "unsupported extension .jpg; vqd writes png",
        ),
        (dir.join("two.png"), "names one png but 2 images"),
        (file.join("under-a-file.png"), "plain"),
    ] {
        let output = vqd()
            // A model that does not exist: the output error must come first.
            .args([
                "generate",
                "a",
                "--num-images",
                "2",
                "--model",
                "/not/a/model",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(!output.status.success());
        assert!(stderr.contains(expected), "{out:?}: {stderr}");
        assert!(
            !stderr.contains("/not/a/model"),
            "{out:?}: model loaded first: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batches_stream_to_disk_and_the_sidecar_records_them() {
    let dir = scratch("batches");
    let out = dir.join("many");
    run_ok(
        vqd()
            .args([
                "generate",
                "a red circle",
                "--num-images",
                "5",
                "--batch-size",
                "2",
            ])
            .args(["--sampler", "strided", "--steps", "3", "--out"])
            .arg(&out),
    );
    for i in 0..5 {
        assert!(out.join(format!("{i:03}.png")).is_file());
    }
    let sidecar = read_json(&out.join("generation.json"));
    assert_eq!(sidecar["batches"], 3);
    assert_eq!(sidecar["batch_size"], 2);
    assert_eq!(sidecar["options"]["steps"], 3);
    assert!(sidecar["versions"]["vq-pipeline"].is_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_reads_configs_and_check_weights_reads_every_tensor() {
    let plain = vqd().arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&plain.stdout);
    assert!(
        plain.status.success() && stdout.contains("files and configs"),
        "{stdout}"
    );
    let full = vqd().args(["check", "--weights"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&full.stdout);
    assert!(
        full.status.success() && stdout.contains("every weight read and finite"),
        "{stdout}"
    );
}

#[test]
fn animate_writes_the_unmasking_and_upscale_enlarges_every_image() {
    let dir = scratch("animate");
    let gif = dir.join("unmasking.gif");
    run_ok(
        vqd()
            .args([
                "generate",
                "a large red circle in the center",
                "--num-images",
                "2",
            ])
            .args([
                "--sampler",
                "strided",
                "--steps",
                "5",
                "--upscale",
                "3",
                "--out",
            ])
            .arg(dir.join("images"))
            .arg("--animate")
            .arg(&gif),
    );
    let png = image::open(dir.join("images/000.png")).unwrap();
    assert_eq!((png.width(), png.height()), (96, 96));
    let frames = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(&gif).unwrap(),
    ))
    .unwrap();
    let frames = image::AnimationDecoder::into_frames(frames)
        .collect_frames()
        .unwrap();
    // One frame per model call and the result.
    assert_eq!(frames.len(), 6);
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("images/generation.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["upscale"], 3);
    assert!(sidecar["images"].to_string().contains("unmasking.gif"));

    // Only GIF, and only one batch.
    for (args, expected) in [
        (vec!["--animate", "x.mp4"], "name a .gif file"),
        (
            vec![
                "--animate",
                "x.gif",
                "--num-images",
                "20",
                "--batch-size",
                "4",
            ],
            "--animate shows one batch",
        ),
        (vec!["--upscale", "0"], "--upscale"),
    ] {
        let output = vqd()
            .args(["generate", "a", "--out"])
            .arg(dir.join("bad"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn convert_writes_a_folder_that_generate_loads() {
    let dir = scratch("convert");
    let original = reference_fixtures::fixtures_dir().join("original");
    let out = dir.join("converted");
    let output = run_ok(vqd().args([
        "convert",
        "--from",
        "original",
        original.join("learnable_tiny.pth").to_str().unwrap(),
        "--remap",
        original.join("remap_24_to_16.pt").to_str().unwrap(),
        "--heads",
        "2",
        "--text-heads",
        "4",
        "--vq-norm-groups",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Text denoiser, 2 blocks × width 16, 16 classes, T = 10"),
        "{stdout}"
    );
    assert!(stdout.contains("24 codes → 16 classes"), "{stdout}");
    assert!(stdout.contains("verified"), "{stdout}");
    // the tokenizer came from the embedded model: the converted model generates
    let png = dir.join("out.png");
    run_ok(vqd().args([
        "generate",
        "a teddy bear",
        "--model",
        out.to_str().unwrap(),
        "--steps",
        "4",
        "--out",
        png.to_str().unwrap(),
    ]));
    assert!(png.is_file());
    // a second conversion to the same folder is refused, naming it
    let output = vqd()
        .args([
            "convert",
            original.join("learnable_tiny.pth").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_converted_class_model_generates_with_class_labels() {
    let dir = scratch("class");
    let original = reference_fixtures::fixtures_dir().join("original");
    let out = dir.join("imagenet");
    let output = run_ok(
        vqd().args([
            "convert",
            original
                .join("imagenet_learnable_tiny.pth")
                .to_str()
                .unwrap(),
            "--remap",
            original.join("remap_16_to_7.pt").to_str().unwrap(),
            "--heads",
            "2",
            "--vq-norm-groups",
            "4",
            "--image-size",
            "8",
            "--class-labels",
            "5",
            "--out",
            out.to_str().unwrap(),
        ]),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Class denoiser") && stdout.contains("learned null class"),
        "{stdout}"
    );
    let images = dir.join("images");
    run_ok(vqd().args([
        "generate",
        "--class",
        "3",
        "--class",
        "none",
        "--guidance-scale",
        "1.5",
        "--steps",
        "4",
        "--model",
        out.to_str().unwrap(),
        "--out",
        images.to_str().unwrap(),
    ]));
    let sidecar = read_json(&images.join("generation.json"));
    assert_eq!(sidecar["class_labels"], serde_json::json!([3, 5]));
    assert_eq!(
        std::fs::read_dir(&images)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png"))
            .count(),
        2
    );
    // prompts on a class model, and a class label out of range, are refused with the reason
    for (args, message) in [
        (
            vec!["generate", "a dog"],
            "class-conditional or unconditional model",
        ),
        (vec!["generate", "--class", "9"], "out of range"),
        (
            vec!["generate", "--class", "golden retriever"],
            "no class names",
        ),
        (
            vec!["generate", "--class", "3", "--int8"],
            "int8_transformer is not available for class-conditional models",
        ),
    ] {
        let stderr = run_err(vqd().args(args).args([
            "--model",
            out.to_str().unwrap(),
            "--out",
            dir.join("x.png").to_str().unwrap(),
        ]));
        assert!(stderr.contains(message), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_file_as_model_is_converted_with_the_release_defaults() {
    // The tiny fixture's text encoder is 8 wide, so OpenAI's head rule (width / 64) cannot
    // apply: the direct route reports it (and leaves nothing in the cache); real checkpoints
    // convert with these defaults.
    let dir = scratch("direct");
    let checkpoint = reference_fixtures::fixtures_dir().join("original/learnable_tiny.pth");
    let stderr = run_err(vqd().env("VQD_CACHE", dir.join("cache")).args([
        "generate",
        "a cat",
        "--model",
        checkpoint.to_str().unwrap(),
        "--out",
        dir.join("x.png").to_str().unwrap(),
    ]));
    assert!(
        stderr.contains("converting") && stderr.contains("not a multiple of 64"),
        "{stderr}"
    );
    let converted = dir.join("cache/converted");
    assert_eq!(
        std::fs::read_dir(&converted).unwrap().count(),
        0,
        "a failed conversion left files"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
