//! Pictures of an unfinished sample: the token grid of any step decoded by the VQ-VAE, with the
//! positions still masked drawn as a grey checkerboard over their cells (the mask state has no
//! codebook entry, so they are decoded as code 0 and then painted over). The live view of
//! `vqd serve` and `vqd generate --animate` show these; they are also how to look at a
//! [`discrete_diffusion::StepEvent`]'s tokens from library code.
//!
//! Upscaling for display is nearest-neighbour: the model's pixels stay sharp squares.

use candle_core::{DType, Tensor};
use discrete_diffusion::Transition;
use image::RgbImage;

use crate::error::component;
use crate::{Result, VqDiffusionPipeline};

/// Checker colours of a masked cell (light and dark grey, in 2-pixel squares).
const CHECKER: [[u8; 3]; 2] = [[150, 150, 150], [105, 105, 105]];

impl VqDiffusionPipeline {
    /// The images of `tokens` `(B, N)` (any step of a sample), masked positions drawn as a
    /// checkerboard.
    pub fn decode_preview(&self, tokens: &Tensor) -> Result<Vec<RgbImage>> {
        let (b, n) = tokens.dims2()?;
        let (rows, cols) = self.grid();
        let host: Vec<u32> = tokens.to_dtype(DType::U32)?.flatten_all()?.to_vec1()?;
        let mask = self.chain().mask_index().map(|m| m as u32);
        let is_masked = |t: u32| Some(t) == mask;
        let filled: Vec<u32> = host
            .iter()
            .map(|&t| if is_masked(t) { 0 } else { t })
            .collect();
        let grid = Tensor::from_vec(filled, (b, rows, cols), self.device())?;
        let decoded = self
            .vqvae()
            .decode_tokens(&grid)
            .map_err(component("vqvae"))?;
        let mut images = vq_codebook::tensor_to_images(&decoded).map_err(component("vqvae"))?;
        let f = self.downsampling_factor() as u32;
        for (image, row) in images.iter_mut().zip(host.chunks(n)) {
            for (i, &t) in row.iter().enumerate() {
                if !is_masked(t) {
                    continue;
                }
                let (r, c) = ((i / cols) as u32, (i % cols) as u32);
                for y in r * f..(r + 1) * f {
                    for x in c * f..(c + 1) * f {
                        let colour = CHECKER[((x / 2 + y / 2) % 2) as usize];
                        image.put_pixel(x, y, image::Rgb(colour));
                    }
                }
            }
        }
        Ok(images)
    }
}

/// `image` `factor` times larger, nearest-neighbour (each pixel a `factor` × `factor` square).
pub fn upscale_nearest(image: &RgbImage, factor: u32) -> RgbImage {
    if factor <= 1 {
        return image.clone();
    }
    image::imageops::resize(
        image,
        image.width() * factor,
        image.height() * factor,
        image::imageops::FilterType::Nearest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_upscaling_repeats_each_pixel() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        img.put_pixel(1, 0, image::Rgb([0, 0, 255]));
        let big = upscale_nearest(&img, 3);
        assert_eq!(big.dimensions(), (6, 3));
        assert_eq!(big.get_pixel(2, 2).0, [255, 0, 0]);
        assert_eq!(big.get_pixel(3, 0).0, [0, 0, 255]);
        assert_eq!(upscale_nearest(&img, 1), img);
    }
}
