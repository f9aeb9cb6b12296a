//! Labelled image galleries: a grid of generated images (nearest-neighbour upscaled so the
//! 32×32 shape-world pixels stay crisp), each with its prompt written underneath — the figure
//! format for "what does the model draw for this prompt" (docs' galleries).

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use vq_train::register_font;

/// Layout of a gallery.
#[derive(Debug, Clone, Copy)]
pub struct GalleryLayout {
    /// Images per row.
    pub columns: usize,
    /// Integer upscaling of each image.
    pub scale: u32,
    /// Text lines under each image.
    pub caption_lines: usize,
}

impl Default for GalleryLayout {
    fn default() -> Self {
        Self {
            columns: 6,
            scale: 4,
            caption_lines: 3,
        }
    }
}

const FONT_SIZE: u32 = 12;
const LINE_HEIGHT: u32 = 14;
const PAD: u32 = 8;

/// Greedy word wrap of `text` to `width` characters, at most `lines` lines (an ellipsis marks
/// text that did not fit).
pub fn wrap(text: &str, width: usize, lines: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        out.push(current);
    }
    if out.len() > lines {
        out.truncate(lines);
        if let Some(last) = out.last_mut() {
            last.push('…');
        }
    }
    out
}

/// Renders `items` (caption, image) as a labelled grid and saves it as PNG at `path`.
pub fn save_gallery(
    items: &[(String, RgbImage)],
    layout: GalleryLayout,
    path: &Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(!items.is_empty(), "an empty gallery");
    let (iw, ih) = items[0].1.dimensions();
    let cell_w = iw * layout.scale + 2 * PAD;
    let cell_h = ih * layout.scale + PAD + layout.caption_lines as u32 * LINE_HEIGHT + PAD;
    let columns = layout.columns.max(1).min(items.len());
    let rows = items.len().div_ceil(columns);
    let (w, h) = (cell_w * columns as u32, cell_h * rows as u32);
    let chars_per_line = (cell_w as usize * 16) / (FONT_SIZE as usize * 9);
    let mut buffer = vec![255u8; (w * h * 3) as usize];
    {
        register_font();
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        let font = ("sans-serif", FONT_SIZE).into_font().color(&BLACK);
        for (i, (caption, _)) in items.iter().enumerate() {
            let (cx, cy) = ((i % columns) as u32 * cell_w, (i / columns) as u32 * cell_h);
            let top = cy + PAD + ih * layout.scale + 4;
            for (l, line) in wrap(caption, chars_per_line, layout.caption_lines)
                .iter()
                .enumerate()
            {
                let at = ((cx + PAD / 2) as i32, (top + l as u32 * LINE_HEIGHT) as i32);
                root.draw(&Text::new(line.as_str(), at, font.clone()))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
        }
        root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let mut canvas = RgbImage::from_raw(w, h, buffer)
        .ok_or_else(|| anyhow::anyhow!("bitmap buffer has the wrong size"))?;
    for (i, (_, image)) in items.iter().enumerate() {
        let (cx, cy) = ((i % columns) as u32 * cell_w, (i / columns) as u32 * cell_h);
        let big = image::imageops::resize(
            image,
            image.width() * layout.scale,
            image.height() * layout.scale,
            image::imageops::FilterType::Nearest,
        );
        image::imageops::replace(&mut canvas, &big, (cx + PAD) as i64, (cy + PAD) as i64);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    canvas.save(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_marks_overflow() {
        assert_eq!(
            wrap("a red circle in the top left", 12, 3),
            ["a red circle", "in the top", "left"]
        );
        assert_eq!(wrap("one two three four", 4, 2), ["one", "two…"]);
    }

    #[test]
    fn gallery_places_every_image() {
        let dir = std::env::temp_dir().join(format!("gallery-{}", std::process::id()));
        let path = dir.join("g.png");
        let red = RgbImage::from_pixel(32, 32, image::Rgb([255, 0, 0]));
        let items: Vec<_> = (0..3)
            .map(|i| (format!("prompt {i}"), red.clone()))
            .collect();
        save_gallery(
            &items,
            GalleryLayout {
                columns: 2,
                ..Default::default()
            },
            &path,
        )
        .unwrap();
        let g = image::open(&path).unwrap().to_rgb8();
        assert_eq!(g.width(), 2 * (128 + 16));
        assert_eq!(g.get_pixel(PAD + 5, PAD + 5).0, [255, 0, 0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
