//! A PyTorch `.bin` state dict with the legacy attention names (`query/key/value/proj_attn`, as
//! in the ITHQ hub file), written by diffusers (`tests/data/make_tiny_legacy_bin.py`), against
//! diffusers' own encode/decode outputs for it.

use std::path::PathBuf;

use candle_core::{DType, Device};
use vq_codebook::{AttentionKeys, VqModel, VqModelConfig};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

#[test]
fn pth_with_legacy_keys_matches_diffusers() {
    let config = VqModelConfig::from_file(data("tiny_legacy_config.json")).unwrap();
    let model = VqModel::from_weights(
        &config,
        data("tiny_legacy.bin"),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        model.encoder().mid_block().attention().unwrap().keys(),
        AttentionKeys::Legacy
    );
    let expected =
        candle_core::safetensors::load(data("tiny_legacy_expected.safetensors"), &Device::Cpu)
            .unwrap();
    let images = &expected["images"];

    let latents = model.encode_latents(images).unwrap();
    let diff = (latents - &expected["encode.latents"])
        .unwrap()
        .abs()
        .unwrap()
        .max_keepdim(0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    println!("encode latents: max |Δ| = {diff:.3e}");
    assert!(diff < 1e-5);

    let indices = model.encode(images).unwrap().to_dtype(DType::I64).unwrap();
    assert_eq!(
        indices.to_vec3::<i64>().unwrap(),
        expected["encode.indices"].to_vec3::<i64>().unwrap()
    );

    let decoded = model.decode_tokens(&expected["tokens"]).unwrap();
    let got: Vec<f32> = decoded.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = expected["decode.images"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("decode: max |Δ| = {worst:.3e} over {} values", got.len());
    assert!(worst < 1e-5);
}
