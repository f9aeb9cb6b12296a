//! A tiny seeded synthetic image set for smoke tests and examples: flat-coloured backgrounds
//! with a few axis-aligned rectangles and discs. Not a benchmark data set (the real small data
//! set is the shape world of the embedded-model issue).

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// `n` RGB images of `size × size` as `(n, 3, size, size)` f32 in `[-1, 1]`.
pub fn synthetic_images(n: usize, size: usize, seed: u64) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0f32; n * 3 * size * size];
    let plane = size * size;
    for image in data.chunks_exact_mut(3 * plane) {
        let background: [f32; 3] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
        for c in 0..3 {
            image[c * plane..(c + 1) * plane].fill(background[c]);
        }
        for _ in 0..rng.random_range(1..=3) {
            let colour: [f32; 3] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
            let disc = rng.random_bool(0.5);
            let extent = rng.random_range(size / 4..=size / 2).max(1);
            let x0 = rng.random_range(0..=size - extent);
            let y0 = rng.random_range(0..=size - extent);
            let r = extent as f32 / 2.0;
            let (cx, cy) = (x0 as f32 + r, y0 as f32 + r);
            for y in y0..y0 + extent {
                for x in x0..x0 + extent {
                    let inside = !disc || {
                        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                        dx * dx + dy * dy <= r * r
                    };
                    if inside {
                        for c in 0..3 {
                            image[c * plane + y * size + x] = colour[c];
                        }
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(data, (n, 3, size, size), &Device::Cpu)?)
}
