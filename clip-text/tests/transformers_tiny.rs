//! Parity with transformers on the tiny models of `tests/data/` (written by `make_tiny.py`):
//! a PyTorch `pytorch_model.bin` in the old hub layout (with `position_ids`) and an f16
//! `model.safetensors` in transformers 5's unprefixed layout with exact-erf GELU.

use std::path::Path;

use candle_core::{DType, Device};
use clip_text::ClipTextModel;

fn check(name: &str, atol: f32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let reference =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let model = ClipTextModel::from_pretrained(dir.join(name), DType::F32, &Device::Cpu).unwrap();
    let hidden = model
        .forward(&reference[&format!("{name}.input_ids")])
        .unwrap();
    let got: Vec<f32> = hidden.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = reference[&format!("{name}.last_hidden_state")]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    reference_fixtures::assert_close(&format!("{name} last_hidden_state"), &got, &want, atol);
}

#[test]
fn pytorch_bin_with_position_ids_matches_transformers() {
    check("tiny_bin", 1e-5);
}

#[test]
fn f16_safetensors_with_exact_gelu_matches_transformers() {
    check("tiny_gelu_f16", 1e-5);
}
