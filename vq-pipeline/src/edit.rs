//! Editing an existing image in token space: inpainting, variations (partial noising) and the
//! two composed, under every sampler and classifier-free guidance.
//!
//! 1. **Fit**: the source image is scaled (Lanczos-3) so that it covers the model's resolution
//!    and centre-cropped to it ([`fit_image`]); a mask of any size gets the same scale and crop
//!    (nearest neighbour), so it stays aligned with the image.
//! 2. **Encode**: the VQ-VAE encoder and quantiser turn the fitted image into the data tokens
//!    `x_0`.
//! 3. **Map the mask to tokens**: a token is regenerated when any pixel of its `f × f` cell is
//!    white (luma ≥ 128) — the region is covered entirely, at the token grid's resolution
//!    ([`regenerated_tokens`]). Every other token is kept.
//! 4. **Denoise** with `discrete_diffusion::sample_with_known`: the kept tokens are re-imposed
//!    after every step (drawn from `q(x_s | x_0)`, or held at `x_0`: [`Reimpose`]) and end
//!    exactly at `x_0`, so the decoded image's kept tokens are bit-identical to the encoded input.
//!    The chain starts at `t = round(strength·T) − 1`: with strength 1 the regenerated tokens
//!    start all-masked (inpainting); below 1 they start from `q(x_t | x_0)` of the source (the
//!    discrete analogue of SDEdit, Meng et al. 2022); strength 0 makes no step and returns the
//!    VQ reconstruction.
//! 5. **Paste back** (optional): outside the regenerated cells the output takes the fitted
//!    source's pixels exactly; inside, a feathered edge blends them over `feather` pixels.

use std::fmt::Write as _;

use candle_core::{DType, Tensor};
use discrete_diffusion::{KnownTokens, NoiseSource, Reimpose, StepEvent, Transition};
use image::{GrayImage, RgbImage, imageops::FilterType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::component;
use crate::pipeline::{Generation, TokenEdit};
use crate::{Error, GenerationOptions, Result, VqDiffusionPipeline};

/// What to edit and how.
#[derive(Debug, Clone)]
pub struct EditInput {
    /// The source image (any size; fitted by [`fit_image`]).
    pub image: RgbImage,
    /// The region to regenerate, white = regenerate (any size; fitted like the image).
    /// `None`: the whole image (a variation).
    pub mask: Option<GrayImage>,
    /// Fraction of the chain run, in `[0, 1]`: 1 regenerates the region from all-mask, below 1
    /// starts from the source partially noised, 0 returns the VQ reconstruction.
    pub strength: f64,
    /// How the kept tokens are re-imposed after every step.
    pub reimpose: Reimpose,
    /// Paste the fitted source's pixels back outside the regenerated region, blending over this
    /// many pixels inside its edge (`None`: the decoded image as it is).
    pub paste_back: Option<f32>,
}

impl EditInput {
    /// Inpainting: regenerate the white pixels of `mask` from all-mask.
    pub fn inpaint(image: RgbImage, mask: GrayImage) -> Self {
        Self {
            image,
            mask: Some(mask),
            strength: 1.0,
            reimpose: Reimpose::ForwardSample,
            paste_back: None,
        }
    }

    /// A variation: the whole image partially noised to `strength` and denoised.
    pub fn vary(image: RgbImage, strength: f64) -> Self {
        Self {
            image,
            mask: None,
            strength,
            reimpose: Reimpose::ForwardSample,
            paste_back: None,
        }
    }
}

/// What an edit started from, as recorded in the sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditRecord {
    /// SHA-256 of the source image's RGB pixels (row-major, 3 bytes each), in hex.
    pub image_sha256: String,
    /// The source image's size `(width, height)`.
    pub image_size: (u32, u32),
    /// SHA-256 of the mask's pixels (`None`: no mask).
    pub mask_sha256: Option<String>,
    /// Tokens regenerated per image, of the grid's total.
    pub regenerated_tokens: usize,
    /// Tokens per image.
    pub num_tokens: usize,
    /// The strength.
    pub strength: f64,
    /// The timestep the chain started at (`None`: no step).
    pub start_timestep: Option<usize>,
    /// The re-imposition rule.
    pub reimpose: Reimpose,
    /// The paste-back feather, if pasted back.
    pub paste_back: Option<f32>,
}

/// `image` scaled (Lanczos-3) to cover `width × height` and centre-cropped to it.
pub fn fit_image(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = scaled_size(image.width(), image.height(), width, height);
    let scaled = image::imageops::resize(image, w, h, FilterType::Lanczos3);
    let (x, y) = ((w - width) / 2, (h - height) / 2);
    image::imageops::crop_imm(&scaled, x, y, width, height).to_image()
}

/// The mask fitted like [`fit_image`] (nearest neighbour, so it stays binary).
pub fn fit_mask(mask: &GrayImage, width: u32, height: u32) -> GrayImage {
    let (w, h) = scaled_size(mask.width(), mask.height(), width, height);
    let scaled = image::imageops::resize(mask, w, h, FilterType::Nearest);
    let (x, y) = ((w - width) / 2, (h - height) / 2);
    image::imageops::crop_imm(&scaled, x, y, width, height).to_image()
}

/// The size a `w × h` image is scaled to so that it covers `width × height` with its aspect
/// ratio kept (at least the target in both directions).
fn scaled_size(w: u32, h: u32, width: u32, height: u32) -> (u32, u32) {
    let scale = (width as f64 / w as f64).max(height as f64 / h as f64);
    let sw = ((w as f64 * scale).round() as u32).max(width);
    let sh = ((h as f64 * scale).round() as u32).max(height);
    (sw, sh)
}

/// Which tokens of a `rows × cols` grid a fitted mask regenerates: those whose cell holds any
/// pixel with luma ≥ 128. Row-major, `rows·cols` flags.
pub fn regenerated_tokens(mask: &GrayImage, rows: usize, cols: usize) -> Vec<bool> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let mut out = vec![false; rows * cols];
    for (x, y, p) in mask.enumerate_pixels() {
        if p[0] >= 128 {
            let r = (y as usize * rows / h).min(rows - 1);
            let c = (x as usize * cols / w).min(cols - 1);
            out[r * cols + c] = true;
        }
    }
    out
}

/// A mask of `width × height` with the box `[x0, x1) × [y0, y1)` white (clipped to the image).
pub fn box_mask(
    width: u32,
    height: u32,
    (x0, y0, x1, y1): (u32, u32, u32, u32),
) -> Result<GrayImage> {
    if x0 >= x1 || y0 >= y1 || x0 >= width || y0 >= height {
        return Err(Error::InvalidOption(format!(
            "the box {x0},{y0},{x1},{y1} is empty or outside the {width}×{height} image \
             (expected x0 < x1, y0 < y1, top-left inside the image)"
        )));
    }
    Ok(GrayImage::from_fn(width, height, |x, y| {
        image::Luma([if x >= x0 && x < x1 && y >= y0 && y < y1 {
            255
        } else {
            0
        }])
    }))
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Blends `source` over `decoded` outside the regenerated cells (exactly) and over a
/// `feather`-pixel band inside their edge (a Gaussian fall-off of the kept region).
fn paste_back(
    decoded: &RgbImage,
    source: &RgbImage,
    regenerated: &[bool],
    cols: usize,
    feather: f32,
) -> RgbImage {
    let (w, h) = decoded.dimensions();
    let rows = regenerated.len() / cols;
    let kept: Vec<f32> = (0..h as usize)
        .flat_map(|y| {
            (0..w as usize).map(move |x| {
                let (r, c) = (y * rows / h as usize, x * cols / w as usize);
                if regenerated[r * cols + c] { 0.0 } else { 1.0 }
            })
        })
        .collect();
    let weight = if feather > 0.0 {
        let blurred = gaussian_blur(&kept, w as usize, h as usize, feather);
        kept.iter().zip(&blurred).map(|(&k, &b)| k.max(b)).collect()
    } else {
        kept
    };
    RgbImage::from_fn(w, h, |x, y| {
        let a = weight[y as usize * w as usize + x as usize];
        let (d, s) = (decoded.get_pixel(x, y), source.get_pixel(x, y));
        image::Rgb(std::array::from_fn(|c| {
            (a * s[c] as f32 + (1.0 - a) * d[c] as f32)
                .round()
                .clamp(0.0, 255.0) as u8
        }))
    })
}

/// A separable Gaussian blur (σ = `sigma` pixels, clamped edges) of a `w × h` plane.
fn gaussian_blur(plane: &[f32], w: usize, h: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (k, &kv) in kernel.iter().enumerate() {
                    let d = k as isize - radius;
                    let (sx, sy) = if horizontal {
                        ((x as isize + d).clamp(0, w as isize - 1) as usize, y)
                    } else {
                        (x, (y as isize + d).clamp(0, h as isize - 1) as usize)
                    };
                    acc += kv * src[sy * w + sx];
                }
                out[y * w + x] = acc / total;
            }
        }
        out
    };
    pass(&pass(plane, true), false)
}

/// Encodes `image`, which must be `size` (width, height) pixels, with `vqvae` into its `(1, N)`
/// u32 tokens on `device` (what a token cache for training stores).
pub fn encode_sized_image(
    vqvae: &vq_codebook::VqModel,
    image: &RgbImage,
    size: (u32, u32),
    device: &candle_core::Device,
) -> Result<Tensor> {
    let (w, h) = size;
    if image.dimensions() != (w, h) {
        return Err(Error::InvalidOption(format!(
            "the image is {}×{}, the model encodes {w}×{h} (use fit_image)",
            image.width(),
            image.height()
        )));
    }
    let pixels = vq_codebook::image_to_tensor(image)
        .map_err(component("vqvae"))?
        .unsqueeze(0)?
        .to_device(device)?;
    let tokens = vqvae.encode(&pixels).map_err(component("vqvae"))?;
    Ok(tokens.flatten_from(1)?.to_dtype(DType::U32)?)
}

impl VqDiffusionPipeline {
    /// The model's image size `(width, height)` in pixels.
    pub fn image_size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        let f = self.downsampling_factor();
        ((cols * f) as u32, (rows * f) as u32)
    }

    /// Encodes an image already at [`VqDiffusionPipeline::image_size`] into its `(1, N)` tokens.
    pub fn encode_image(&self, image: &RgbImage) -> Result<Tensor> {
        encode_sized_image(self.vqvae(), image, self.image_size(), self.device())
    }

    /// Edits `input.image` as the prompts of `options` say (module docs: fit, encode, map the
    /// mask, denoise with the kept tokens re-imposed, optionally paste back). Every image of the
    /// batch edits the same source.
    pub fn edit(
        &self,
        options: &GenerationOptions,
        input: &EditInput,
        noise: &mut dyn NoiseSource,
        on_step: impl FnMut(&StepEvent) -> Result<()>,
    ) -> Result<Generation> {
        if !(0.0..=1.0).contains(&input.strength) {
            return Err(Error::InvalidOption(format!(
                "strength must be in [0, 1], got {}",
                input.strength
            )));
        }
        if let Some(f) = input.paste_back
            && !(f.is_finite() && f >= 0.0)
        {
            return Err(Error::InvalidOption(format!(
                "the paste-back feather must be a non-negative number of pixels, got {f}"
            )));
        }
        if input.image.width() == 0 || input.image.height() == 0 {
            return Err(Error::InvalidOption("the source image is empty".into()));
        }
        let (w, h) = self.image_size();
        let (rows, cols) = self.grid();
        let n = rows * cols;
        let source = fit_image(&input.image, w, h);
        let regenerate = match &input.mask {
            Some(mask) => {
                if mask.width() == 0 || mask.height() == 0 {
                    return Err(Error::InvalidOption("the mask is empty (0 pixels)".into()));
                }
                let flags = regenerated_tokens(&fit_mask(mask, w, h), rows, cols);
                if !flags.iter().any(|&f| f) {
                    return Err(Error::InvalidOption(
                        "the mask selects nothing to regenerate (no pixel with luma ≥ 128 \
                         inside the fitted frame)"
                            .into(),
                    ));
                }
                flags
            }
            None => vec![true; n],
        };
        let tokens = self.encode_image(&source)?;
        let b = options.prompts.len() * options.num_images_per_prompt;
        let batch_tokens = tokens.repeat((b, 1))?;
        let kept: Vec<u8> = regenerate.iter().map(|&r| u8::from(!r)).collect();
        let kept = Tensor::from_vec(kept, (1, n), self.device())?.repeat((b, 1))?;
        let known = KnownTokens::new(&batch_tokens, &kept, input.reimpose)?;
        let big_t = self.chain().num_timesteps();
        let steps = (input.strength * big_t as f64).round() as usize;
        let start = steps.checked_sub(1);
        let record = EditRecord {
            image_sha256: sha256_hex(input.image.as_raw()),
            image_size: input.image.dimensions(),
            mask_sha256: input.mask.as_ref().map(|m| sha256_hex(m.as_raw())),
            regenerated_tokens: regenerate.iter().filter(|&&r| r).count(),
            num_tokens: n,
            strength: input.strength,
            start_timestep: start,
            reimpose: input.reimpose,
            paste_back: input.paste_back,
        };
        let edit = TokenEdit {
            known,
            start,
            noised_unknown: input.strength < 1.0,
            tokens: batch_tokens,
            record,
        };
        let mut generation = self.run(options, Some(edit), noise, on_step)?;
        if let Some(feather) = input.paste_back {
            for image in &mut generation.images {
                *image = paste_back(image, &source, &regenerate, cols, feather);
            }
        }
        Ok(generation)
    }

    /// Inpainting: regenerates the white pixels of `mask` (module docs), keeping every other
    /// token exactly.
    pub fn inpaint(
        &self,
        options: &GenerationOptions,
        image: &RgbImage,
        mask: &GrayImage,
        noise: &mut dyn NoiseSource,
        on_step: impl FnMut(&StepEvent) -> Result<()>,
    ) -> Result<Generation> {
        let input = EditInput::inpaint(image.clone(), mask.clone());
        self.edit(options, &input, noise, on_step)
    }

    /// A variation of `image`: partially noised to `strength` and denoised under the prompts.
    pub fn vary(
        &self,
        options: &GenerationOptions,
        image: &RgbImage,
        strength: f64,
        noise: &mut dyn NoiseSource,
        on_step: impl FnMut(&StepEvent) -> Result<()>,
    ) -> Result<Generation> {
        let input = EditInput::vary(image.clone(), strength);
        self.edit(options, &input, noise, on_step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_scales_to_cover_and_crops_the_centre() {
        // 4 × 2: left half red, right half blue → 2 × 2 keeps the middle columns.
        let img = RgbImage::from_fn(8, 4, |x, _| {
            if x < 4 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let fitted = fit_image(&img, 4, 4);
        assert_eq!(fitted.dimensions(), (4, 4));
        assert!(fitted.get_pixel(0, 1)[0] > 200 && fitted.get_pixel(3, 1)[2] > 200);
        assert_eq!(scaled_size(100, 50, 32, 32), (64, 32));
        assert_eq!(scaled_size(10, 10, 32, 32), (32, 32));
    }

    #[test]
    fn any_white_pixel_regenerates_its_cell() {
        let mut mask = GrayImage::new(32, 32);
        mask.put_pixel(9, 0, image::Luma([200]));
        mask.put_pixel(31, 31, image::Luma([127])); // below the threshold
        let flags = regenerated_tokens(&mask, 4, 4);
        assert_eq!(flags.iter().filter(|&&f| f).count(), 1);
        assert!(flags[1]);
        let boxed = box_mask(32, 32, (0, 0, 8, 8)).unwrap();
        assert_eq!(
            regenerated_tokens(&boxed, 4, 4)
                .iter()
                .filter(|&&f| f)
                .count(),
            1
        );
        assert!(matches!(
            box_mask(32, 32, (5, 5, 5, 9)),
            Err(Error::InvalidOption(_))
        ));
        assert!(matches!(
            box_mask(32, 32, (40, 0, 50, 9)),
            Err(Error::InvalidOption(_))
        ));
    }

    #[test]
    fn paste_back_keeps_the_source_outside_the_region() {
        let decoded = RgbImage::from_pixel(8, 8, image::Rgb([0, 0, 0]));
        let source = RgbImage::from_pixel(8, 8, image::Rgb([200, 100, 50]));
        let regenerated = vec![false, true, false, false]; // 2 × 2 grid: top-right cell
        for feather in [0.0, 1.5] {
            let out = paste_back(&decoded, &source, &regenerated, 2, feather);
            assert_eq!(out.get_pixel(0, 0), &image::Rgb([200, 100, 50]));
            assert_eq!(out.get_pixel(2, 6), &image::Rgb([200, 100, 50]));
            // Deep inside the region: the decoded pixels.
            assert!(out.get_pixel(7, 0)[0] < 60, "feather {feather}");
        }
    }
}
