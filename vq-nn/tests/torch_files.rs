//! The crate's own PyTorch reader against candle's, on every `.bin` checkpoint committed in the
//! workspace (written by PyTorch 2.15 through diffusers and transformers): same keys, dtypes,
//! shapes and values, bit for bit.

use std::path::PathBuf;

use candle_core::Device;
use vq_nn::{WeightFile, WeightFormat};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin_files() -> Vec<PathBuf> {
    [
        "clip-text/tests/data/tiny_bin/pytorch_model.bin",
        "vq-codebook/tests/data/tiny_legacy.bin",
        "fixtures/pipeline_learnable/bin_variant/transformer/diffusion_pytorch_model.bin",
        "fixtures/pipeline_learnable/bin_variant/text_encoder/pytorch_model.bin",
    ]
    .iter()
    .map(|p| workspace().join(p))
    .filter(|p| p.is_file())
    .collect()
}

#[test]
fn reads_pytorch_checkpoints_exactly_as_candle_does() {
    let files = bin_files();
    assert!(files.len() >= 2, "fixtures missing: {files:?}");
    for path in files {
        let ours = WeightFile::open(&path).unwrap();
        assert_eq!(ours.format(), WeightFormat::PyTorch);
        let theirs = candle_core::pickle::read_all(&path).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{}", path.display());
        for (key, want) in theirs {
            let got = ours.tensor(&key, &Device::Cpu).unwrap();
            assert_eq!(got.dtype(), want.dtype(), "{key}");
            assert_eq!(got.dims(), want.dims(), "{key}");
            let same = got
                .flatten_all()
                .unwrap()
                .eq(&want.flatten_all().unwrap())
                .unwrap()
                .min(0)
                .unwrap()
                .to_scalar::<u8>()
                .unwrap();
            assert_eq!(same, 1, "{}: {key} differs", path.display());
            ours.check_finite(&key).unwrap();
        }
    }
}

#[test]
fn every_truncation_of_a_checkpoint_is_an_error() {
    let path = &bin_files()[0];
    let bytes = std::fs::read(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.bin");
    let step = (bytes.len() / 97).max(1);
    for len in (0..bytes.len()).step_by(step) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        assert!(
            WeightFile::open(&cut).is_err(),
            "a {len}-byte prefix opened"
        );
    }
}
