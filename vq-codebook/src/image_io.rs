//! Images ⇄ tensors, the way diffusers does it.
//!
//! * In (`VaeImageProcessor.preprocess` / the original `PatchVQVAE`): 8-bit RGB → `v / 255` in
//!   f32 → `2v − 1`, giving `(3, H, W)` in `[-1, 1]`.
//! * Out (`VQDiffusionPipeline.__call__` + `numpy_to_pil`): `clamp(x / 2 + 0.5, 0, 1)` in f32,
//!   then `round(v · 255)` with NumPy's round-half-to-even, as `u8`.
//!
//! PNG reading and writing go through the `image` crate.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::error::{Error, Result};

/// One 8-bit RGB image → `(3, H, W)` f32 in `[-1, 1]`.
pub fn image_to_tensor(image: &RgbImage) -> Result<Tensor> {
    let (w, h) = image.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (x, y, pixel) in image.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        for c in 0..3 {
            data[c * h * w + y * w + x] = (pixel[c] as f32 / 255.0) * 2.0 - 1.0;
        }
    }
    Ok(Tensor::from_vec(data, (3, h, w), &Device::Cpu)?)
}

/// Equally sized RGB images → `(B, 3, H, W)` f32 in `[-1, 1]`.
pub fn images_to_tensor(images: &[RgbImage]) -> Result<Tensor> {
    let first = images.first().ok_or_else(|| Error::Shape {
        what: "images",
        expected: "at least one image".into(),
        found: vec![0],
    })?;
    let size = first.dimensions();
    let mut tensors = Vec::with_capacity(images.len());
    for image in images {
        if image.dimensions() != size {
            return Err(Error::Shape {
                what: "images",
                expected: format!("all images {}x{} (height x width)", size.1, size.0),
                found: vec![image.height() as usize, image.width() as usize],
            });
        }
        tensors.push(image_to_tensor(image)?);
    }
    Ok(Tensor::stack(&tensors, 0)?)
}

/// Reads a PNG (or any format the `image` crate was built with), converts it to RGB, and returns
/// `(3, H, W)` in `[-1, 1]`.
pub fn load_image(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let image = image::open(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })?;
    image_to_tensor(&image.to_rgb8())
}

/// Every PNG of `dir` (sorted by name, all the same size) as one `(B, 3, H, W)` batch in `[-1, 1]`.
pub fn load_folder(dir: impl AsRef<Path>) -> Result<Tensor> {
    let dir = dir.as_ref();
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no PNG files",
        )));
    }
    let images = paths.iter().map(load_image).collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&images, 0)?)
}

/// diffusers' 8-bit conversion of one value in `[-1, 1]`: `round_half_even(clamp(x/2 + 0.5, 0, 1) · 255)`.
pub fn to_u8(x: f32) -> u8 {
    let v = (x / 2.0 + 0.5).clamp(0.0, 1.0);
    (v * 255.0).round_ties_even() as u8
}

/// `(3, H, W)` or `(1, 3, H, W)` values in `[-1, 1]` → an RGB image (diffusers' rounding).
pub fn tensor_to_image(image: &Tensor) -> Result<RgbImage> {
    let image = if image.rank() == 4 && image.dim(0)? == 1 {
        image.squeeze(0)?
    } else {
        image.clone()
    };
    let (c, h, w) = image.dims3().map_err(|_| Error::Shape {
        what: "image",
        expected: "(3, H, W)".into(),
        found: image.dims().to_vec(),
    })?;
    if c != 3 {
        return Err(Error::Channels {
            what: "image",
            expected: 3,
            found: c,
            shape: image.dims().to_vec(),
        });
    }
    let values: Vec<f32> = image
        .to_dtype(DType::F32)?
        .permute((1, 2, 0))?
        .flatten_all()?
        .to_vec1()?;
    let bytes: Vec<u8> = values.into_iter().map(to_u8).collect();
    Ok(RgbImage::from_raw(w as u32, h as u32, bytes).expect("buffer size is 3·H·W"))
}

/// `(B, 3, H, W)` values in `[-1, 1]` → RGB images (diffusers' rounding).
pub fn tensor_to_images(images: &Tensor) -> Result<Vec<RgbImage>> {
    let b = images.dims4().map_err(|_| Error::Shape {
        what: "images",
        expected: "(B, 3, H, W)".into(),
        found: images.dims().to_vec(),
    })?;
    (0..b.0).map(|i| tensor_to_image(&images.get(i)?)).collect()
}

/// Writes `(3, H, W)` values in `[-1, 1]` as an 8-bit PNG.
pub fn save_png(image: &Tensor, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    tensor_to_image(image)?
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| Error::Image {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_follows_numpy() {
        assert_eq!(to_u8(-1.0), 0);
        assert_eq!(to_u8(1.0), 255);
        assert_eq!(to_u8(-3.0), 0);
        assert_eq!(to_u8(7.0), 255);
        // 0.5 / 255 · 2 − 1 lands exactly on a .5 boundary after scaling: ties go to even.
        assert_eq!((0.5f32).round_ties_even(), 0.0);
        assert_eq!(to_u8(0.0), 128); // 127.5 → 128 (even)
    }

    #[test]
    fn png_round_trip_is_exact() {
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([(x * 50) as u8, (y * 90) as u8, 7]));
        let t = image_to_tensor(&image).unwrap();
        assert_eq!(t.dims(), &[3, 3, 5]);
        let dir = std::env::temp_dir().join(format!("vq-codebook-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.png");
        save_png(&t, &path).unwrap();
        let back = load_image(&path).unwrap();
        assert_eq!(tensor_to_image(&back).unwrap(), image);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
