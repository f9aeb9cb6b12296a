//! Writing a generation: one PNG per image (or the single file asked for), an optional contact
//! sheet (a grid of every image), and a JSON sidecar with every setting used, the prompts, the
//! warnings and the timings, so any image can be regenerated.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::io;
use crate::{Error, Generation, GenerationOptions, Result};

/// A grid of the images, `columns` wide, with a 2-pixel white gutter.
pub fn contact_sheet(images: &[RgbImage], columns: usize) -> RgbImage {
    let columns = columns.clamp(1, images.len().max(1));
    let rows = images.len().div_ceil(columns);
    let (w, h) = images.first().map_or((1, 1), |i| (i.width(), i.height()));
    let gutter = 2;
    let mut sheet = RgbImage::from_pixel(
        columns as u32 * (w + gutter) + gutter,
        rows as u32 * (h + gutter) + gutter,
        image::Rgb([255, 255, 255]),
    );
    for (i, img) in images.iter().enumerate() {
        let (c, r) = ((i % columns) as u32, (i / columns) as u32);
        image::imageops::overlay(
            &mut sheet,
            img,
            (gutter + c * (w + gutter)) as i64,
            (gutter + r * (h + gutter)) as i64,
        );
    }
    sheet
}

fn image_error(path: &Path) -> impl FnOnce(image::ImageError) -> Error + '_ {
    move |source| Error::Image {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the images: to `out` itself when it names a `.png` and there is one image, else into
/// the folder `out` as `<index>.png` (plus `contact_sheet.png` when asked). A sidecar
/// `<stem>.json` (or `generation.json` in the folder) records the settings. Returns the paths.
pub fn write_outputs(
    out: &Path,
    generation: &Generation,
    options: &GenerationOptions,
    model: &str,
    sheet: bool,
) -> Result<Vec<PathBuf>> {
    let single = generation.images.len() == 1
        && out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let mut written = Vec::new();
    let sidecar = if single {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        generation.images[0].save(out).map_err(image_error(out))?;
        written.push(out.to_path_buf());
        out.with_extension("json")
    } else {
        if out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            return Err(Error::InvalidOption(format!(
                "{} names one PNG but {} images were generated; pass a folder",
                out.display(),
                generation.images.len()
            )));
        }
        std::fs::create_dir_all(out).map_err(io(out))?;
        for (i, img) in generation.images.iter().enumerate() {
            let path = out.join(format!("{i:03}.png"));
            img.save(&path).map_err(image_error(&path))?;
            written.push(path);
        }
        if sheet {
            let path = out.join("contact_sheet.png");
            let columns = options
                .num_images_per_prompt
                .max((generation.images.len() as f64).sqrt().ceil() as usize);
            contact_sheet(&generation.images, columns)
                .save(&path)
                .map_err(image_error(&path))?;
            written.push(path);
        }
        out.join("generation.json")
    };
    let record = serde_json::json!({
        "model": model,
        "options": options,
        "seed": generation.seed,
        "images": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "image_prompts": generation.image_prompts,
        "warnings": generation.warnings,
        "model_calls": generation.model_calls,
        "edit": generation.edit,
        "timings_seconds": {
            "text": generation.timings.text.as_secs_f64(),
            "denoise": generation.timings.denoise.as_secs_f64(),
            "decode": generation.timings.decode.as_secs_f64(),
        },
        "vq_pipeline_version": env!("CARGO_PKG_VERSION"),
    });
    let text = serde_json::to_string_pretty(&record).expect("a JSON value serialises") + "\n";
    std::fs::write(&sidecar, text).map_err(io(&sidecar))?;
    written.push(sidecar);
    Ok(written)
}
