//! Decode time of one 32×32 token grid at the ITHQ size (random weights), the work the
//! VQ-Diffusion pipeline does once per image. Run by hand: `cargo bench -p vq-codebook --bench decode`
//! (each sample takes seconds). `benches/compare_decode.sh` times diffusers on the same shapes.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use vq_codebook::{VqModel, VqModelConfig};

fn decode(c: &mut Criterion) {
    let config = VqModelConfig::ithq();
    let varmap = VarMap::new();
    let model = VqModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )
    .unwrap();
    let ids: Vec<u32> = (0..1024u32).map(|i| (i * 2654435761u32) % 4096).collect();
    let tokens = Tensor::from_vec(ids, (1, 32, 32), &Device::Cpu).unwrap();
    let mut group = c.benchmark_group("vq_decode");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(30));
    group.bench_function("ithq_32x32_grid_to_256x256", |b| {
        b.iter(|| model.decode_tokens(&tokens).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
