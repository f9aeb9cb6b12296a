//! Every study binary's `--quick` mode runs to the end and writes its table and figures, so no
//! study rots (the sampler studies use the shipped embedded model).

use std::path::{Path, PathBuf};
use std::process::Command;

fn run_quick(exe: &str, name: &str, expected: &[&str]) {
    let out: PathBuf = std::env::temp_dir().join(format!("study-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(exe)
        .args(["--quick", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name} --quick failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in expected.iter().chain(&["settings.json"]) {
        assert!(Path::new(&out).join(file).is_file(), "{name}: no {file}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn schedules_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_schedules"),
        "schedules",
        &["compare_mutual_information.png"],
    );
}

#[test]
fn strided_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_strided"),
        "strided",
        &["strided.csv", "strided_fid.png", "strided_faithfulness.svg"],
    );
}

#[test]
fn int8_quick() {
    run_quick(env!("CARGO_BIN_EXE_int8"), "int8", &["int8.csv"]);
}

#[test]
fn samplers_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_samplers"),
        "samplers",
        &["samplers.csv", "samplers_fid.png"],
    );
}

#[test]
fn guidance_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_guidance"),
        "guidance",
        &[
            "guidance.csv",
            "guidance_scale.png",
            "truncation.png",
            "samplers.png",
        ],
    );
}

#[test]
fn transitions_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_transitions"),
        "transitions",
        &["transitions.csv", "transitions.png", "transitions.json"],
    );
}

#[test]
fn reparameterisation_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_reparameterisation"),
        "reparameterisation",
        &["reparameterisation.csv", "reparameterisation.json"],
    );
}

#[test]
fn ar_baseline_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_ar_baseline"),
        "ar_baseline",
        &["ar_baseline.csv", "ar_baseline.png"],
    );
}

#[test]
fn editing_quick() {
    run_quick(
        env!("CARGO_BIN_EXE_editing"),
        "editing",
        &[
            "inpainting.csv",
            "variation.csv",
            "variation.png",
            "gallery.png",
        ],
    );
}
