//! Edit inputs: any bytes as the source image and as the mask (decoded as `vqd` does), fitted
//! to the model's resolution, mapped to the token grid, and a box of any coordinates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 18 {
        return;
    }
    let (head, rest) = data.split_at(18);
    let word = |i: usize| u32::from(u16::from_le_bytes([head[i], head[i + 1]]));
    let (w, h) = (word(0) % 300 + 1, word(2) % 300 + 1);
    let (rows, cols) = ((head[4] % 40 + 1) as usize, (head[5] % 40 + 1) as usize);
    let split = (word(6) as usize).min(rest.len());
    let (image_bytes, mask_bytes) = rest.split_at(split);
    if let Ok(img) = image::load_from_memory(image_bytes) {
        let fitted = vq_pipeline::fit_image(&img.to_rgb8(), w, h);
        assert_eq!(fitted.dimensions(), (w, h));
    }
    if let Ok(mask) = image::load_from_memory(mask_bytes) {
        let fitted = vq_pipeline::fit_mask(&mask.to_luma8(), w, h);
        assert_eq!(fitted.dimensions(), (w, h));
        let flags = vq_pipeline::regenerated_tokens(&fitted, rows, cols);
        assert_eq!(flags.len(), rows * cols);
    }
    let b = (word(8), word(10), word(12), word(14));
    if let Ok(mask) = vq_pipeline::box_mask(word(16) % 512, w, b) {
        let flags = vq_pipeline::regenerated_tokens(&mask, rows, cols);
        assert_eq!(flags.len(), rows * cols);
    }
});
