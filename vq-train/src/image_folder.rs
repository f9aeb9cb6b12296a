//! Captioned image folders in the layouts people already have:
//!
//! * **`metadata.jsonl`** (Hugging Face `datasets`' ImageFolder convention): one JSON object a
//!   line with `file_name` (relative to the folder) and `text` (the caption); other columns are
//!   allowed and ignored;
//! * **same-name `.txt` files** beside each image (`cat.png` + `cat.txt`: the convention of the
//!   popular fine-tuning tools), used when there is no `metadata.jsonl`.
//!
//! Images are PNG or JPEG of any size and mode; [`fit_image`] scales one to cover the model's
//! resolution (Lanczos-3) and crops the centre. Bad data — a malformed line, a missing caption, a
//! caption for a missing image, an unreadable image, an empty caption — is an error naming the
//! file (and line), or, with [`BadData::Skip`], left out and counted in
//! [`ImageFolder::skipped`]. The validation split is by a hash of each file name, so it is the
//! same on every run and does not move when images are added.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Deserialize;

use crate::error::io;
use crate::{Error, Result};

/// What to do with a bad item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadData {
    /// Stop with an error naming the file.
    #[default]
    Error,
    /// Leave the item out and record why in [`ImageFolder::skipped`].
    Skip,
}

/// One image and its caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionedImage {
    /// The image file.
    pub path: PathBuf,
    /// Its caption.
    pub caption: String,
}

/// A folder of captioned images.
#[derive(Debug, Clone, Default)]
pub struct ImageFolder {
    /// The folder.
    pub root: PathBuf,
    /// The usable items, sorted by path.
    pub items: Vec<CaptionedImage>,
    /// Items left out under [`BadData::Skip`], with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether `path` is a PNG or JPEG by its extension.
pub(crate) fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[derive(Deserialize)]
struct MetadataLine {
    file_name: String,
    #[serde(default)]
    text: Option<String>,
}

impl ImageFolder {
    /// Reads the folder's captions (`metadata.jsonl`, else `.txt` files) and checks every image
    /// header.
    pub fn open(root: impl AsRef<Path>, bad: BadData) -> Result<Self> {
        Self::open_with(root.as_ref(), bad, true)
    }

    /// The folder's images without captions (for training a VQ-VAE): the files `metadata.jsonl`
    /// lists when there is one (its `text` is not needed), else every PNG / JPEG in the folder.
    /// Captions are left empty; every image header is checked.
    pub fn open_images(root: impl AsRef<Path>, bad: BadData) -> Result<Self> {
        Self::open_with(root.as_ref(), bad, false)
    }

    fn open_with(root: &Path, bad: BadData, captioned: bool) -> Result<Self> {
        let root = root.to_path_buf();
        if !root.is_dir() {
            return Err(Error::Data {
                path: root,
                reason: "not a folder of images".into(),
            });
        }
        let mut folder = ImageFolder {
            root: root.clone(),
            ..Self::default()
        };
        let mut candidates = Vec::new();
        let problem = |path: PathBuf, reason: String, folder: &mut ImageFolder| match bad {
            BadData::Error => Err(Error::Data { path, reason }),
            BadData::Skip => {
                folder.skipped.push((path, reason));
                Ok(())
            }
        };
        let metadata = root.join("metadata.jsonl");
        if metadata.is_file() {
            let text = std::fs::read_to_string(&metadata).map_err(io(&metadata))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<MetadataLine>(line) {
                    Ok(MetadataLine {
                        file_name,
                        text: Some(text),
                    }) => candidates.push((root.join(&file_name), text)),
                    Ok(MetadataLine { file_name, .. }) if !captioned => {
                        candidates.push((root.join(&file_name), String::new()))
                    }
                    Ok(_) => problem(
                        metadata.clone(),
                        format!("line {}: no \"text\" (the caption)", i + 1),
                        &mut folder,
                    )?,
                    Err(e) => problem(
                        metadata.clone(),
                        format!(
                            "line {}: {e} (expected {{\"file_name\": …, \"text\": …}})",
                            i + 1
                        ),
                        &mut folder,
                    )?,
                }
            }
        } else {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&root)
                .map_err(io(&root))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for path in &entries {
                if is_image(path) && !captioned {
                    candidates.push((path.clone(), String::new()));
                } else if is_image(path) {
                    let caption_file = path.with_extension("txt");
                    match std::fs::read_to_string(&caption_file) {
                        Ok(c) => candidates.push((path.clone(), c.trim().to_string())),
                        Err(_) => problem(
                            path.clone(),
                            format!(
                                "no caption: neither metadata.jsonl nor {} exists",
                                caption_file.display()
                            ),
                            &mut folder,
                        )?,
                    }
                } else if captioned
                    && path.extension().is_some_and(|e| e == "txt")
                    && !IMAGE_EXTENSIONS.iter().any(|e| {
                        path.with_extension(e).is_file()
                            || path.with_extension(e.to_ascii_uppercase()).is_file()
                    })
                {
                    problem(
                        path.clone(),
                        "a caption file without an image of the same name".into(),
                        &mut folder,
                    )?;
                }
            }
        }
        for (path, caption) in candidates {
            if captioned && caption.trim().is_empty() {
                problem(path, "the caption is empty".into(), &mut folder)?;
                continue;
            }
            if !path.is_file() {
                problem(
                    path,
                    "listed in metadata.jsonl but missing".into(),
                    &mut folder,
                )?;
                continue;
            }
            match check_image(&path) {
                Ok(()) => folder.items.push(CaptionedImage {
                    path,
                    caption: caption.trim().to_string(),
                }),
                Err(reason) => problem(path, reason, &mut folder)?,
            }
        }
        folder.items.sort_by(|a, b| a.path.cmp(&b.path));
        if folder.items.is_empty() {
            return Err(Error::Data {
                path: root,
                reason: format!(
                    "no usable {}images ({} skipped)",
                    if captioned { "captioned " } else { "" },
                    folder.skipped.len()
                ),
            });
        }
        Ok(folder)
    }

    /// The items split into (training, validation): an item is held out when the hash of its
    /// file name (with `seed`) falls in the first `fraction` of the range.
    pub fn split(&self, fraction: f64, seed: u64) -> (Vec<&CaptionedImage>, Vec<&CaptionedImage>) {
        self.items.iter().partition(|item| {
            let name = item.path.strip_prefix(&self.root).unwrap_or(&item.path);
            !held_out(name, fraction, seed)
        })
    }
}

/// Checks an image's header: readable, not empty (the reason otherwise).
pub(crate) fn check_image(path: &Path) -> std::result::Result<(), String> {
    let readable = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| e.to_string())
        .and_then(|r| r.into_dimensions().map_err(|e| e.to_string()));
    match readable {
        Ok((w, h)) if w > 0 && h > 0 => Ok(()),
        Ok(_) => Err("the image is empty".into()),
        Err(e) => Err(format!("not a readable image: {e}")),
    }
}

/// Whether the item at `relative` (its path under the dataset's folder) is held out: the
/// seeded hash of its name falls in the first `fraction` of the range.
pub(crate) fn held_out(relative: &Path, fraction: f64, seed: u64) -> bool {
    let threshold = (fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    fnv1a(relative.to_string_lossy().as_bytes(), seed) < threshold
}

/// FNV-1a (64-bit) of `bytes`, seeded.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Reads an image as RGB and fits it to `size × size`: scaled (Lanczos-3) so that it covers the
/// square, then centre-cropped.
pub fn fit_image(path: &Path, size: u32) -> Result<RgbImage> {
    let img = image::ImageReader::open(path)
        .map_err(io(path))?
        .with_guessed_format()
        .map_err(io(path))?
        .decode()
        .map_err(|e| Error::Data {
            path: path.to_path_buf(),
            reason: format!("not a readable image: {e}"),
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let scale = f64::from(size) / f64::from(w.min(h));
    let (sw, sh) = (
        ((f64::from(w) * scale).round() as u32).max(size),
        ((f64::from(h) * scale).round() as u32).max(size),
    );
    let scaled = image::imageops::resize(&img, sw, sh, image::imageops::FilterType::Lanczos3);
    Ok(image::imageops::crop_imm(&scaled, (sw - size) / 2, (sh - size) / 2, size, size).to_image())
}
