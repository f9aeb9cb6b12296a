//! Rasterises a [`Scene`] into a 32×32 RGB image: a plain grey background and hard-edged filled
//! shapes centred on their grid cell (bounding box snapped to whole pixels) (with the scene's sub-cell jitter), no anti-aliasing, so
//! every pixel is either the background or one palette colour.

use image::RgbImage;

use crate::{IMAGE_SIZE, Object, Scene, Shape};

/// Renders `scene`; `jitter[i]` shifts object `i` by whole pixels `(dx, dy)`.
pub fn render(scene: &Scene, jitter: &[(i32, i32)]) -> RgbImage {
    let size = IMAGE_SIZE as u32;
    let g = scene.background;
    let mut img = RgbImage::from_pixel(size, size, image::Rgb([g, g, g]));
    for (i, object) in scene.objects.iter().enumerate() {
        let (dx, dy) = jitter.get(i).copied().unwrap_or((0, 0));
        draw(&mut img, object, dx, dy);
    }
    img
}

/// Whether pixel `(x, y)` (its centre) lies inside `object` placed with offset `(dx, dy)`.
pub fn covers(object: &Object, dx: i32, dy: i32, x: usize, y: usize) -> bool {
    // Snap the bounding box to whole pixels so every placement rasterises identically.
    let (cx, cy) = object.cell.centre();
    let half = object.size.pixels() as f32 / 2.0;
    let (cx, cy) = (
        (cx - half).round() + half + dx as f32,
        (cy - half).round() + half + dy as f32,
    );
    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
    match object.shape {
        Shape::Square => (px - cx).abs() <= half && (py - cy).abs() <= half,
        Shape::Circle => (px - cx).powi(2) + (py - cy).powi(2) <= half * half,
        Shape::Triangle => {
            // Apex at the top centre, base along the bottom of the bounding box.
            let top = cy - half;
            let bottom = cy + half;
            if py < top || py > bottom {
                return false;
            }
            let width_here = (py - top) / (bottom - top) * half;
            (px - cx).abs() <= width_here
        }
    }
}

fn draw(img: &mut RgbImage, object: &Object, dx: i32, dy: i32) {
    let rgb = image::Rgb(object.colour.rgb());
    for y in 0..IMAGE_SIZE {
        for x in 0..IMAGE_SIZE {
            if covers(object, dx, dy, x, y) {
                img.put_pixel(x as u32, y as u32, rgb);
            }
        }
    }
}
