//! The oracle: recovers a scene's objects from an image by analysis alone (no learned model).
//!
//! 1. Background = the median grey of the border pixels.
//! 2. Each pixel is labelled with the nearest palette colour if it is closer to that colour than
//!    to the background and within [`COLOUR_TOLERANCE`]; otherwise background.
//! 3. 4-connected components per colour; components smaller than [`MIN_AREA`] pixels are noise.
//! 4. Per component: size from the bounding box (≥ [`LARGE_EXTENT`] px across = large), shape from
//!    the fill ratio (area / bounding box ≥ 0.88 = square) and the top-versus-bottom width
//!    profile (a narrow top = triangle, else circle), position = the grid cell of the centroid.
//!
//! The size threshold and [`MIN_AREA`] leave a pixel of margin for the soft edges of decoded
//! images (a VQ-VAE reconstruction is about a pixel wider and has colour fringes): on the shipped
//! VQ-VAE's reconstructions they cut size errors from 56 to 18 and object-count errors from 13 to
//! 2 per 300 validation scenes, with ground truth still read exactly. (Template matching of the
//! shapes was tried and read blurred small shapes worse than the fill/profile rule.)
//!
//! On rendered ground truth it is exact (tested over thousands of scenes); on generated images it
//! tolerates colour noise and stray pixels.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::{Cell, Colour, IMAGE_SIZE, Shape, Size};

/// Maximum RGB distance for a pixel to count as a palette colour.
pub const COLOUR_TOLERANCE: f32 = 110.0;
/// Components smaller than this are ignored (the smallest object, a small triangle, covers 25
/// pixels; colour fringes of blurred edges in decoded images stay well below).
pub const MIN_AREA: usize = 14;
/// Bounding boxes at least this wide or tall are large objects (rendered: 7 px small, 11 px
/// large; the threshold sits where a decoder's one-pixel blur cannot move a small object).
pub const LARGE_EXTENT: usize = 10;

/// An object found in an image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Shape.
    pub shape: Shape,
    /// Colour.
    pub colour: Colour,
    /// Size.
    pub size: Size,
    /// Grid cell of the centroid.
    pub cell: Cell,
    /// Pixels in the component.
    pub area: usize,
    /// Centroid (x, y) in pixels.
    pub centroid: (f32, f32),
}

fn distance(a: [u8; 3], b: [u8; 3]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, y)| (x as f32 - y as f32).powi(2))
        .sum::<f32>()
        .sqrt()
}

/// Finds the objects in `image` (largest first).
pub fn analyse(image: &RgbImage) -> Vec<Detection> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut border: Vec<u8> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
                let p = image.get_pixel(x as u32, y as u32).0;
                border.push(((p[0] as u32 + p[1] as u32 + p[2] as u32) / 3) as u8);
            }
        }
    }
    border.sort_unstable();
    let g = border[border.len() / 2];
    let background = [g, g, g];

    let labels: Vec<Option<usize>> = (0..w * h)
        .map(|i| {
            let p = image.get_pixel((i % w) as u32, (i / w) as u32).0;
            let (best, d) = Colour::ALL
                .iter()
                .enumerate()
                .map(|(c, colour)| (c, distance(p, colour.rgb())))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("palette is not empty");
            (d < COLOUR_TOLERANCE && d < distance(p, background)).then_some(best)
        })
        .collect();

    let mut seen = vec![false; w * h];
    let mut found = Vec::new();
    for start in 0..w * h {
        let Some(colour) = labels[start] else {
            continue;
        };
        if seen[start] {
            continue;
        }
        let mut stack = vec![start];
        seen[start] = true;
        let mut pixels = Vec::new();
        while let Some(i) = stack.pop() {
            pixels.push(i);
            let (x, y) = (i % w, i / w);
            let neighbours = [
                (x.wrapping_sub(1), y),
                (x + 1, y),
                (x, y.wrapping_sub(1)),
                (x, y + 1),
            ];
            for (nx, ny) in neighbours {
                if nx < w && ny < h {
                    let j = ny * w + nx;
                    if !seen[j] && labels[j] == Some(colour) {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if pixels.len() >= MIN_AREA {
            found.push(describe(&pixels, w, Colour::ALL[colour]));
        }
    }
    found.sort_by_key(|d| std::cmp::Reverse(d.area));
    found
}

fn describe(pixels: &[usize], w: usize, colour: Colour) -> Detection {
    let xs = pixels.iter().map(|i| i % w);
    let ys = pixels.iter().map(|i| i / w);
    let (x0, x1) = (xs.clone().min().unwrap_or(0), xs.clone().max().unwrap_or(0));
    let (y0, y1) = (ys.clone().min().unwrap_or(0), ys.clone().max().unwrap_or(0));
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let area = pixels.len();
    let fill = area as f32 / (bw * bh) as f32;
    // Width of the top and bottom quarters of the bounding box.
    let quarter = (bh / 4).max(1);
    let width_in = |from: usize, to: usize| {
        pixels
            .iter()
            .filter(|&&i| (from..to).contains(&(i / w)))
            .count()
    };
    let top = width_in(y0, y0 + quarter) as f32;
    let bottom = width_in(y1 + 1 - quarter, y1 + 1) as f32;
    let shape = if fill >= 0.88 {
        Shape::Square
    } else if top < 0.6 * bottom {
        Shape::Triangle
    } else {
        Shape::Circle
    };
    let size = if bw.max(bh) >= LARGE_EXTENT {
        Size::Large
    } else {
        Size::Small
    };
    let cx = xs.map(|x| x as f32 + 0.5).sum::<f32>() / area as f32;
    let cy = ys.map(|y| y as f32 + 0.5).sum::<f32>() / area as f32;
    let step = IMAGE_SIZE as f32 / 3.0;
    let cell = Cell {
        row: ((cy / step) as u8).min(2),
        col: ((cx / step) as u8).min(2),
    };
    Detection {
        shape,
        colour,
        size,
        cell,
        area,
        centroid: (cx, cy),
    }
}
