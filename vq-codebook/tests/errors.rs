//! Input validation: image sizes, channel counts, token ranges and dtypes.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{seeded_model, tiny_config};
use vq_codebook::Error;

#[test]
fn image_sizes_must_be_multiples_of_the_downsampling_factor() {
    let (_, model) = seeded_model(&tiny_config(), 0);
    let images = Tensor::zeros((1, 3, 8, 7), DType::F32, &Device::Cpu).unwrap();
    match model.encode(&images).unwrap_err() {
        Error::ImageSize {
            height,
            width,
            factor,
        } => assert_eq!((height, width, factor), (8, 7, 2)),
        other => panic!("{other}"),
    }
}

#[test]
fn channel_mismatches_are_reported() {
    let (_, model) = seeded_model(&tiny_config(), 0);
    let gray = Tensor::zeros((1, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let err = model.encode(&gray).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Channels {
                expected: 3,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    let latents = Tensor::zeros((1, 5, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let err = model.decode_latents(&latents).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Channels {
                expected: 4,
                found: 5,
                ..
            }
        ),
        "{err}"
    );
    let flat = Tensor::zeros((3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        model.encode(&flat).unwrap_err(),
        Error::Shape { .. }
    ));
}

#[test]
fn out_of_range_tokens_are_rejected_with_position() {
    let (_, model) = seeded_model(&tiny_config(), 0);
    let mut ids = vec![0u32; 16];
    ids[5] = 16; // the diffusion mask id of a 16-code model
    let tokens = Tensor::from_vec(ids, (1, 4, 4), &Device::Cpu).unwrap();
    match model.decode_tokens(&tokens).unwrap_err() {
        Error::TokenOutOfRange {
            id,
            position,
            num_embeddings,
        } => assert_eq!((id, position, num_embeddings), (16, 5, 16)),
        other => panic!("{other}"),
    }
    let negative = Tensor::from_vec(vec![0i64, -1, 0, 0], (1, 2, 2), &Device::Cpu).unwrap();
    assert!(matches!(
        model.codebook_entry(&negative).unwrap_err(),
        Error::TokenOutOfRange { id: -1, .. }
    ));
    let floats = Tensor::zeros((1, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        model.codebook_entry(&floats).unwrap_err(),
        Error::Shape { .. }
    ));
    let flat = Tensor::zeros((1, 4), DType::U32, &Device::Cpu).unwrap();
    assert!(matches!(
        model.decode_tokens(&flat).unwrap_err(),
        Error::Shape { .. }
    ));
}

#[test]
fn i64_and_u8_token_grids_decode_like_u32() {
    let (_, model) = seeded_model(&tiny_config(), 0);
    let ids: Vec<u32> = (0..16).collect();
    let u32s = Tensor::from_vec(ids, (1, 4, 4), &Device::Cpu).unwrap();
    let want = model.decode_tokens(&u32s).unwrap();
    for dtype in [DType::I64, DType::U8] {
        let got = model.decode_tokens(&u32s.to_dtype(dtype).unwrap()).unwrap();
        assert_eq!(common::max_diff(&got, &want), 0.0);
    }
}
