//! Editing on the embedded shape-world model: inpainting keeps every unmasked token of the
//! encoded source bit for bit and reproduces committed tokens for a fixed seed (golden, written
//! by this test with `VQD_BLESS=1` — regenerate it when the embedded model changes); strength 0
//! is the VQ reconstruction with no model call; an all-white mask is plain generation bit for
//! bit; bad masks, boxes and strengths are errors naming the problem. (The golden tokens hold
//! on the CPUs this project runs CI on; another SIMD width may round a near-tie differently.) `vqd inpaint` and
//! `vqd vary` write their images and record the edit in the sidecar.

use std::path::{Path, PathBuf};

use discrete_diffusion::{Reimpose, SeededNoise};
use image::{GrayImage, RgbImage};
use vq_pipeline::{
    EditInput, Error, GenerationOptions, LoadOptions, VqDiffusionPipeline, box_mask,
    regenerated_tokens,
};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/shape-world")
}

fn pipeline() -> VqDiffusionPipeline {
    VqDiffusionPipeline::from_pretrained(model_dir(), LoadOptions::default()).unwrap()
}

fn options(p: &VqDiffusionPipeline, prompt: &str, n: usize) -> GenerationOptions {
    p.default_options([prompt]).num_images_per_prompt(n)
}

/// A source scene: what the model draws for a fixed prompt and seed.
fn source(p: &VqDiffusionPipeline) -> RgbImage {
    let g = p
        .generate(
            &options(p, "a large red circle in the top left", 1),
            &mut SeededNoise::new(3),
            |_| Ok(()),
        )
        .unwrap();
    g.images[0].clone()
}

fn tokens(t: &candle_core::Tensor) -> Vec<Vec<u32>> {
    t.to_vec2::<u32>().unwrap()
}

#[test]
fn inpainting_keeps_the_unmasked_tokens_and_matches_the_golden_tokens() {
    let p = pipeline();
    let src = source(&p);
    let (w, h) = p.image_size();
    let (rows, cols) = p.grid();
    let mask = box_mask(w, h, (w / 2, h / 2, w, h)).unwrap();
    let regenerate = regenerated_tokens(&mask, rows, cols);
    let encoded = tokens(&p.encode_image(&src).unwrap())[0].clone();
    for rule in [Reimpose::ForwardSample, Reimpose::KeepData] {
        let input = EditInput {
            reimpose: rule,
            ..EditInput::inpaint(src.clone(), mask.clone())
        };
        let g = p
            .edit(
                &options(&p, "a small blue square in the bottom right", 3),
                &input,
                &mut SeededNoise::new(11),
                |_| Ok(()),
            )
            .unwrap();
        let out = tokens(&g.tokens);
        for row in &out {
            for (i, (&got, &want)) in row.iter().zip(&encoded).enumerate() {
                if !regenerate[i] {
                    assert_eq!(got, want, "{rule:?}: kept token {i} changed");
                }
            }
        }
        let record = g.edit.as_ref().unwrap();
        assert_eq!(
            record.regenerated_tokens,
            regenerate.iter().filter(|&&r| r).count()
        );
        assert_eq!(record.reimpose, rule);
        if rule == Reimpose::ForwardSample {
            let golden =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/inpaint_golden.json");
            let got: String = out
                .iter()
                .map(|row| serde_json::to_string(row).unwrap() + "\n")
                .collect();
            if std::env::var_os("VQD_BLESS").is_some() {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &got).unwrap();
            }
            let want = std::fs::read_to_string(&golden)
                .expect("tests/data/inpaint_golden.json (run with VQD_BLESS=1 to write it)");
            assert_eq!(got, want, "inpainting tokens differ from the golden file");
        }
    }
}

#[test]
fn strength_zero_is_the_reconstruction_and_a_white_mask_is_generation() {
    let p = pipeline();
    let src = source(&p);
    let g = p
        .vary(
            &options(&p, "", 2),
            &src,
            0.0,
            &mut SeededNoise::new(5),
            |_| Ok(()),
        )
        .unwrap();
    assert_eq!(g.model_calls, 0);
    let encoded = tokens(&p.encode_image(&src).unwrap())[0].clone();
    assert!(tokens(&g.tokens).iter().all(|row| row == &encoded));

    let (w, h) = p.image_size();
    let white = GrayImage::from_pixel(w, h, image::Luma([255]));
    let opts = options(&p, "a small green triangle", 2);
    let edited = p
        .inpaint(&opts, &src, &white, &mut SeededNoise::new(8), |_| Ok(()))
        .unwrap();
    let generated = p
        .generate(&opts, &mut SeededNoise::new(8), |_| Ok(()))
        .unwrap();
    assert_eq!(tokens(&edited.tokens), tokens(&generated.tokens));
    assert_eq!(edited.images, generated.images);

    // Half strength: fewer model calls than the full chain, a valid image.
    let half = p
        .vary(&opts, &src, 0.5, &mut SeededNoise::new(8), |_| Ok(()))
        .unwrap();
    assert!(half.model_calls > 0 && half.model_calls < generated.model_calls);
    assert_eq!(
        half.edit.as_ref().unwrap().start_timestep.map(|t| t + 1),
        Some(half.model_calls)
    );
}

#[test]
fn paste_back_restores_the_source_pixels_outside_the_region() {
    let p = pipeline();
    let src = source(&p);
    let (w, h) = p.image_size();
    let mask = box_mask(w, h, (0, 0, w / 2, h)).unwrap();
    let input = EditInput {
        paste_back: Some(2.0),
        ..EditInput::inpaint(src.clone(), mask)
    };
    let g = p
        .edit(
            &options(&p, "a blue circle", 1),
            &input,
            &mut SeededNoise::new(1),
            |_| Ok(()),
        )
        .unwrap();
    for x in w / 2..w {
        for y in 0..h {
            assert_eq!(g.images[0].get_pixel(x, y), src.get_pixel(x, y));
        }
    }
}

#[test]
fn bad_edits_are_errors_naming_the_problem() {
    let p = pipeline();
    let src = source(&p);
    let opts = options(&p, "a red square", 1);
    let run = |input: EditInput| p.edit(&opts, &input, &mut SeededNoise::new(0), |_| Ok(()));
    let black = GrayImage::new(40, 40);
    let err = run(EditInput::inpaint(src.clone(), black)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption(m) if m.contains("selects nothing")),
        "{err}"
    );
    let err = run(EditInput::inpaint(src.clone(), GrayImage::new(0, 0))).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption(m) if m.contains("0 pixels")),
        "{err}"
    );
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = run(EditInput::vary(src.clone(), bad)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidOption(m) if m.contains("strength")),
            "{err}"
        );
    }
    let err = run(EditInput {
        paste_back: Some(-1.0),
        ..EditInput::vary(src.clone(), 0.5)
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption(m) if m.contains("feather")),
        "{err}"
    );
    let err = run(EditInput::vary(RgbImage::new(0, 3), 0.5)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption(m) if m.contains("empty")),
        "{err}"
    );
    // Masks and images of other sizes are fitted, not refused.
    let wide = RgbImage::from_fn(96, 48, |x, y| src.get_pixel(x % 32, y % 32).to_owned());
    let mask = box_mask(96, 48, (40, 0, 60, 48)).unwrap();
    assert!(run(EditInput::inpaint(wide, mask)).is_ok());
}

fn vqd() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vqd"));
    command.env(
        "VQD_CACHE",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-cache"),
    );
    command
}

#[test]
fn vqd_inpaint_and_vary_write_images_and_record_the_edit() {
    let dir = std::env::temp_dir().join(format!("vqd-edit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = pipeline();
    let src_path = dir.join("source.png");
    source(&p).save(&src_path).unwrap();
    let out = dir.join("inpainted.png");
    let run = vqd()
        .args([
            "inpaint",
            "a blue square in the bottom right",
            "--box",
            "16,16,32,32",
            "--image",
        ])
        .arg(&src_path)
        .arg("--out")
        .arg(&out)
        .args(["--paste-back", "--seed", "4"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["edit"]["strength"], 1.0);
    assert_eq!(sidecar["edit"]["paste_back"], 2.0);
    assert_eq!(sidecar["edit"]["image_sha256"].as_str().unwrap().len(), 64);

    let varied = dir.join("varied");
    let run = vqd()
        .args(["vary", "--strength", "0.3", "--num-images", "2", "--image"])
        .arg(&src_path)
        .arg("--out")
        .arg(&varied)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(varied.join("000.png").is_file() && varied.join("001.png").is_file());

    for (args, needle) in [
        (
            vec!["inpaint", "x", "--box", "1,2,3"],
            "four non-negative integers",
        ),
        (
            vec!["inpaint", "x", "--box", "9,9,9,12"],
            "empty or outside",
        ),
        (vec!["inpaint", "x"], "--mask"),
    ] {
        let run = vqd()
            .args(&args)
            .arg("--image")
            .arg(&src_path)
            .output()
            .unwrap();
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let run = vqd()
        .args(["vary", "--strength", "0.5", "--image"])
        .arg(dir.join("missing.png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("missing.png"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
