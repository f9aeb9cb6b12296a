//! The small classifier whose penultimate features define the world's Fréchet distance ("our
//! FID"). A 3-layer strided CNN (3→16→32→64 channels, 32×32 → 4×4, ReLU) and a 64-d feature layer,
//! trained with four softmax heads to read the largest object's shape, colour, size and grid cell
//! from rendered training images. Trained once (`cargo run --release -p shape-world --example
//! train_feature_net`) and shipped as `shape-world/assets/feature_net.safetensors`.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};
use image::RgbImage;

use crate::{Colour, IMAGE_SIZE, Scene, Shape, Size};

/// Width of the feature layer.
pub const FEATURES: usize = 64;
/// Number of classes of the four heads: shape, colour, size, cell.
pub const HEADS: [usize; 4] = [3, 6, 2, 9];

/// The classifier.
pub struct FeatureNet {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    features: Linear,
    heads: Vec<Linear>,
}

/// The weights shipped with the crate.
pub const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../assets/feature_net.safetensors");

impl FeatureNet {
    /// Builds the network on `vb` (a `VarMap` builder to train, or loaded weights).
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let strided = Conv2dConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv1: candle_nn::conv2d(3, 16, 3, strided, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(16, 32, 3, strided, vb.pp("conv2"))?,
            conv3: candle_nn::conv2d(32, 64, 3, strided, vb.pp("conv3"))?,
            features: candle_nn::linear(64 * 16, FEATURES, vb.pp("features"))?,
            heads: HEADS
                .iter()
                .enumerate()
                .map(|(i, &n)| candle_nn::linear(FEATURES, n, vb.pp(format!("head{i}"))))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// The network with the shipped weights, on the CPU.
    pub fn shipped() -> candle_core::Result<Self> {
        let vb = VarBuilder::from_slice_safetensors(SHIPPED_WEIGHTS, DType::F32, &Device::Cpu)?;
        Self::new(vb)
    }

    /// Features `(B, 64)` of images `(B, 3, 32, 32)` in `[-1, 1]`.
    pub fn features(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.conv1.forward(images)?.relu()?;
        let h = self.conv2.forward(&h)?.relu()?;
        let h = self.conv3.forward(&h)?.relu()?;
        self.features.forward(&h.flatten_from(1)?)?.relu()
    }

    /// Logits of the four heads.
    pub fn heads(&self, features: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        self.heads.iter().map(|h| h.forward(features)).collect()
    }
}

/// Images as a `(B, 3, 32, 32)` f32 tensor in `[-1, 1]`.
pub fn images_to_tensor(images: &[RgbImage], device: &Device) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(images.len() * 3 * IMAGE_SIZE * IMAGE_SIZE);
    for img in images {
        for c in 0..3 {
            for p in img.pixels() {
                data.push(p.0[c] as f32 / 127.5 - 1.0);
            }
        }
    }
    Tensor::from_vec(data, (images.len(), 3, IMAGE_SIZE, IMAGE_SIZE), device)
}

/// Training targets of the four heads for a scene (its largest object; first on ties).
pub fn targets(scene: &Scene) -> [u32; 4] {
    let o = scene
        .objects
        .iter()
        .rev()
        .max_by_key(|o| o.size == Size::Large)
        .expect("scenes have at least one object");
    let shape = Shape::ALL.iter().position(|&s| s == o.shape).unwrap_or(0);
    let colour = Colour::ALL.iter().position(|&c| c == o.colour).unwrap_or(0);
    let size = usize::from(o.size == Size::Large);
    [
        shape as u32,
        colour as u32,
        size as u32,
        (o.cell.row * 3 + o.cell.col) as u32,
    ]
}

impl FeatureNet {
    /// Feature vectors of `images`, computed in batches of 256.
    pub fn feature_rows(&self, images: &[RgbImage]) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut rows = Vec::with_capacity(images.len());
        for chunk in images.chunks(256) {
            let x = images_to_tensor(chunk, &Device::Cpu)?;
            rows.extend(self.features(&x)?.to_vec2::<f32>()?);
        }
        Ok(rows)
    }

    /// "Our FID": the Fréchet distance between the feature distributions of two image sets.
    pub fn frechet_distance(&self, a: &[RgbImage], b: &[RgbImage]) -> candle_core::Result<f64> {
        let fa = crate::mean_and_covariance(&self.feature_rows(a)?);
        let fb = crate::mean_and_covariance(&self.feature_rows(b)?);
        Ok(crate::frechet_distance(&fa, &fb))
    }
}
