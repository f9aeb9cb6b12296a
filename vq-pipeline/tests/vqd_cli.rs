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
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = scratch("bad");
    for (args, expected) in [
        (vec!["--guidance-scale=-1"], "guidance"),
        (vec!["--steps", "0"], "step"),
        (vec!["--model", "/definitely/not/here"], "not"),
    ] {
        let output = vqd()
            .args(["generate", "a blue square"])
            .args(&args)
            .arg("--out")
            .arg(dir.join("x.png"))
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
