//! Prints the time to decode one 32×32 token grid into a 256×256 image at the ITHQ size
//! (random weights): `cargo run -p vq-codebook --example decode_time -- [repeats]`.
//! `benches/compare_decode.sh` runs this next to diffusers.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use vq_codebook::{VqModel, VqModelConfig};

fn main() -> anyhow::Result<()> {
    let repeats: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let config = VqModelConfig::ithq();
    let varmap = VarMap::new();
    let model = VqModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )?;
    let ids: Vec<u32> = (0..1024u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 4096)
        .collect();
    let tokens = Tensor::from_vec(ids, (1, 32, 32), &Device::Cpu)?;
    model.decode_tokens(&tokens)?; // warm-up
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let image = model.decode_tokens(&tokens)?;
        assert_eq!(image.dims(), &[1, 3, 256, 256]);
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "vq-codebook/decode_32x32_to_256x256   median {:8.1} ms   min {:8.1} ms   ({} runs, {} threads)",
        1e3 * times[times.len() / 2],
        1e3 * times[0],
        repeats,
        candle_core::utils::get_num_threads()
    );
    Ok(())
}
