//! Trains the world's feature classifier (`FeatureNet`) on rendered training scenes and writes
//! `shape-world/assets/feature_net.safetensors` (atomically), printing per-head validation
//! accuracy. Run: `cargo run --release -p shape-world --example train_feature_net [-- --steps N]`.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use shape_world::{FeatureNet, Split, World, images_to_tensor, targets};

fn batch(
    world: &World,
    split: Split,
    start: u64,
    n: usize,
    dev: &Device,
) -> anyhow::Result<(Tensor, Vec<Tensor>)> {
    let examples: Vec<_> = (start..start + n as u64)
        .map(|i| world.example(split, i))
        .collect();
    let images: Vec<_> = examples.iter().map(|e| e.image.clone()).collect();
    let x = images_to_tensor(&images, dev)?;
    let t: Vec<[u32; 4]> = examples.iter().map(|e| targets(&e.scene)).collect();
    let heads = (0..4)
        .map(|h| Tensor::from_vec(t.iter().map(|r| r[h]).collect::<Vec<_>>(), n, dev))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((x, heads))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args
        .iter()
        .position(|a| a == "--steps")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1500);
    let dev = Device::Cpu;
    let world = World::default();
    let varmap = VarMap::new();
    let net = FeatureNet::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 2e-3,
            ..Default::default()
        },
    )?;
    for step in 0..steps {
        let (x, y) = batch(&world, Split::Train, (step * 64) as u64, 64, &dev)?;
        let logits = net.heads(&net.features(&x)?)?;
        let mut loss = Tensor::new(0f32, &dev)?;
        for (l, t) in logits.iter().zip(&y) {
            loss = (loss + candle_nn::loss::cross_entropy(l, t)?)?;
        }
        opt.backward_step(&loss)?;
        if step % 100 == 0 {
            println!("step {step:5} loss {:.4}", loss.to_scalar::<f32>()?);
        }
    }
    let (x, y) = batch(&world, Split::Validation, 0, 1000, &dev)?;
    let logits = net.heads(&net.features(&x)?)?;
    for (name, (l, t)) in ["shape", "colour", "size", "cell"]
        .iter()
        .zip(logits.iter().zip(&y))
    {
        let correct: f32 = l
            .argmax(1)?
            .eq(t)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar()?;
        println!("validation accuracy {name}: {:.3}", correct);
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/feature_net.safetensors");
    let tmp = path.with_extension("safetensors.tmp");
    varmap.save(&tmp)?;
    std::fs::rename(&tmp, &path)?;
    println!("wrote {}", path.display());
    Ok(())
}
