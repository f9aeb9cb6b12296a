//! Writing a generation: one PNG per image (or the single file asked for), an optional contact
//! sheet (a grid of every image), and a JSON sidecar with every setting that took effect, the
//! model as loaded, the prompts, the warnings and the timings, so any image can be regenerated.
//!
//! The output path is checked before any work ([`OutputPlan::new`]), by one rule:
//!
//! * a path ending in `.png` (any case) is one image file, and its sidecar is the same path
//!   with `.json`; asking for more than one image (or a contact sheet) there is an error;
//! * an existing folder, or a path without an extension, is a folder: `000.png`, `001.png`, …,
//!   `contact_sheet.png` on request, and the sidecar `generation.json`;
//! * any other extension (`out.jpg`) is an error: only PNG is written.
//!
//! Every file is written atomically (a temporary file in the same folder, then renamed), so an
//! interrupted run never leaves a truncated PNG or sidecar under the final name; the sidecar is
//! written last, once every image it lists exists.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Serialize;

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

/// The model a run used, as the sidecar records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ModelRecord {
    /// The model as the user named it (folder, repo id, or `embedded:<folder>`).
    pub name: String,
    /// The hub revision asked for (hub models only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The commit of the hub snapshot loaded (hub models only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_commit: Option<String>,
    /// Storage dtype of the weights (`F32`, `F16`, `BF16`), with `+INT8` when the transformer's
    /// projections are quantised to 8 bits (`LoadOptions::int8_transformer`).
    pub dtype: String,
    /// Weight-file variant (`default`, `fp16`).
    pub variant: String,
    /// The device (`cpu`, `cuda:0`, …).
    pub device: String,
}

impl ModelRecord {
    /// A record with only a name (the loading settings left empty).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// The versions of the crates that computed a run.
pub fn crate_versions() -> serde_json::Value {
    serde_json::json!({
        "vq-pipeline": env!("CARGO_PKG_VERSION"),
        "discrete-diffusion": discrete_diffusion::VERSION,
        "vq-transformer": vq_transformer::VERSION,
        "vq-codebook": vq_codebook::VERSION,
        "clip-text": clip_text::VERSION,
        "vq-nn": vq_nn::VERSION,
    })
}

/// Where a run's files go, checked before any work (see the module doc for the rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputPlan {
    /// One PNG file.
    Single(PathBuf),
    /// A folder of numbered PNGs.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// Whether a contact sheet is written.
        contact_sheet: bool,
    },
}

impl OutputPlan {
    /// Checks `out` for a run of `images` images and creates the folders it needs.
    pub fn new(out: &Path, images: usize, contact_sheet: bool) -> Result<Self> {
        let bad = |m: String| Err(Error::InvalidOption(m));
        let extension = out.extension().and_then(|e| e.to_str()).map(str::to_owned);
        let is_png = extension
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let plan = if out.is_dir() || (extension.is_none() && !out.is_file()) {
            OutputPlan::Folder {
                dir: out.to_path_buf(),
                contact_sheet,
            }
        } else if is_png {
            if images != 1 {
                return bad(format!(
                    "--out {} names one PNG but {images} images will be generated; pass a folder",
                    out.display()
                ));
            }
            if contact_sheet {
                return bad(format!(
                    "--contact-sheet needs a folder output and several images; {} is one PNG",
                    out.display()
                ));
            }
            OutputPlan::Single(out.to_path_buf())
        } else if let Some(ext) = extension {
            return bad(format!(
                "--out {}: unsupported extension .{ext}; vqd writes PNG: name a .png file or a \
                 folder",
                out.display()
            ));
        } else {
            return bad(format!(
                "--out {} is an existing file without an extension; name a .png file or a folder",
                out.display()
            ));
        };
        if contact_sheet && images < 2 {
            return bad("--contact-sheet needs several images (one was asked for)".into());
        }
        let dir = match &plan {
            OutputPlan::Single(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf),
            OutputPlan::Folder { dir, .. } => Some(dir.clone()),
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(plan)
    }

    /// The path of image `index` (counted over the whole run).
    pub fn image_path(&self, index: usize) -> PathBuf {
        match self {
            OutputPlan::Single(path) => path.clone(),
            OutputPlan::Folder { dir, .. } => dir.join(format!("{index:03}.png")),
        }
    }

    /// The sidecar's path.
    pub fn sidecar_path(&self) -> PathBuf {
        match self {
            OutputPlan::Single(path) => path.with_extension("json"),
            OutputPlan::Folder { dir, .. } => dir.join("generation.json"),
        }
    }

    /// Whether a contact sheet is written.
    pub fn wants_contact_sheet(&self) -> bool {
        matches!(
            self,
            OutputPlan::Folder {
                contact_sheet: true,
                ..
            }
        )
    }

    /// Writes image `index` atomically; returns its path.
    pub fn write_image(&self, index: usize, image: &RgbImage) -> Result<PathBuf> {
        let path = self.image_path(index);
        write_png(&path, image)?;
        Ok(path)
    }

    /// Writes the contact sheet of `images` (`columns` wide) atomically, if one was asked for.
    pub fn write_contact_sheet(
        &self,
        images: &[RgbImage],
        columns: usize,
    ) -> Result<Option<PathBuf>> {
        let OutputPlan::Folder {
            dir,
            contact_sheet: true,
        } = self
        else {
            return Ok(None);
        };
        let path = dir.join("contact_sheet.png");
        write_png(&path, &contact_sheet(images, columns))?;
        Ok(Some(path))
    }

    /// Writes the sidecar atomically; returns its path.
    pub fn write_sidecar(&self, record: &serde_json::Value) -> Result<PathBuf> {
        let path = self.sidecar_path();
        let text = serde_json::to_string_pretty(record).expect("a JSON value serialises") + "\n";
        write_atomically(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_name(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io(path))
}

fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn write_png(path: &Path, image: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|source| Error::Image {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomically(path, &bytes)
}

/// What a run did, accumulated over its batches, for the sidecar.
#[derive(Debug, Clone, Default)]
pub struct RunLog {
    /// Every file written so far.
    pub written: Vec<PathBuf>,
    /// The prompt of each image.
    pub image_prompts: Vec<String>,
    /// Distinct warnings, in order.
    pub warnings: Vec<String>,
    /// Model calls per batch (every batch runs the same chain).
    pub model_calls: usize,
    /// Batches run.
    pub batches: usize,
    /// Seconds per stage, summed over the batches.
    pub seconds: [f64; 3],
    /// The seed of the noise source.
    pub seed: Option<u64>,
    /// The edit's record, for edits.
    pub edit: Option<crate::EditRecord>,
}

impl RunLog {
    /// Writes the images of one batch (the run's images `first..`) and records it.
    pub fn write_batch(
        &mut self,
        plan: &OutputPlan,
        first: usize,
        generation: &Generation,
    ) -> Result<()> {
        for (i, img) in generation.images.iter().enumerate() {
            self.written.push(plan.write_image(first + i, img)?);
        }
        self.record(generation);
        Ok(())
    }

    /// Records a batch without writing it.
    pub fn record(&mut self, generation: &Generation) {
        self.image_prompts
            .extend(generation.image_prompts.iter().cloned());
        for w in &generation.warnings {
            if !self.warnings.contains(w) {
                self.warnings.push(w.clone());
            }
        }
        self.model_calls = generation.model_calls;
        self.batches += 1;
        let t = &generation.timings;
        for (s, d) in self.seconds.iter_mut().zip([t.text, t.denoise, t.decode]) {
            *s += d.as_secs_f64();
        }
        self.seed = generation.seed;
        if self.edit.is_none() {
            self.edit = generation.edit.clone();
        }
    }

    /// The sidecar's content.
    pub fn sidecar(&self, options: &GenerationOptions, model: &ModelRecord) -> serde_json::Value {
        serde_json::json!({
            "model": model,
            "options": options.effective_settings(),
            "seed": self.seed,
            "batches": self.batches,
            "images": self.written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "image_prompts": self.image_prompts,
            "warnings": self.warnings,
            "model_calls": self.model_calls,
            "edit": self.edit,
            "timings_seconds": {
                "text": self.seconds[0],
                "denoise": self.seconds[1],
                "decode": self.seconds[2],
            },
            "versions": crate_versions(),
        })
    }
}

/// Writes a whole generation by the [`OutputPlan`] rule: the images, the contact sheet when
/// asked, then the sidecar. Returns every path written.
pub fn write_outputs(
    out: &Path,
    generation: &Generation,
    options: &GenerationOptions,
    model: &ModelRecord,
    sheet: bool,
) -> Result<Vec<PathBuf>> {
    let plan = OutputPlan::new(out, generation.images.len(), sheet)?;
    let mut log = RunLog::default();
    log.write_batch(&plan, 0, generation)?;
    let columns = options
        .num_images_per_prompt
        .max((generation.images.len() as f64).sqrt().ceil() as usize);
    if let Some(path) = plan.write_contact_sheet(&generation.images, columns)? {
        log.written.push(path);
    }
    let sidecar = plan.write_sidecar(&log.sidecar(options, model))?;
    log.written.push(sidecar);
    Ok(log.written)
}
