//! Which words of a caption the denoiser actually uses. For real validation images (one object)
//! the x₀ cross-entropy of the model, in nats per token at a few timesteps, is measured with the
//! true caption and with captions in which one attribute (position, colour, shape, size) is
//! changed to another value, and with the null condition. A model that uses an attribute pays
//! for the changed caption; a gap near zero means the attribute's words are ignored (this is how
//! the first embedded model was found to ignore position, see docs/results.md §2).

use candle_core::{DType, Device};
use clip_text::ClipTokenizer;
use discrete_diffusion::Timesteps;
use discrete_diffusion::{SeededNoise, Transition};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use shape_world::{Cell, Colour, SceneSpec, Shape, Size, Split, World, images_to_tensor};
use vq_codebook::VqModel;

use super::config::EmbeddedConfig;
use super::denoiser_training::repository_tokenizer_dir;
use super::joint_model::JointModel;

/// The caption variants compared, in column order.
pub const VARIANTS: [&str; 6] = ["true", "position", "colour", "shape", "size", "null"];

/// Cross-entropies at one timestep.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRow {
    /// The timestep.
    pub t: usize,
    /// Nats per token for each of [`VARIANTS`].
    pub nats: Vec<f64>,
}

fn other<T: Copy + PartialEq>(all: &[T], now: T, rng: &mut StdRng) -> T {
    loop {
        let k = all[rng.random_range(0..all.len())];
        if k != now {
            return k;
        }
    }
}

/// The captions of `spec` with one attribute changed, in [`VARIANTS`] order (the null
/// condition's entry is the true caption; it is replaced by the null embedding).
fn variants(spec: &SceneSpec, rng: &mut StdRng) -> Vec<String> {
    let cells: Vec<Cell> = Cell::all().collect();
    let o = spec.objects[0];
    let changed = |f: &dyn Fn(&mut shape_world::ObjectSpec)| {
        let mut s = spec.clone();
        f(&mut s.objects[0]);
        s.caption(0)
    };
    let cell = other(&cells, o.cell.expect("complete spec"), rng);
    let colour = other(&Colour::ALL, o.colour.expect("complete spec"), rng);
    let shape = other(&Shape::ALL, o.shape.expect("complete spec"), rng);
    let size = other(&Size::ALL, o.size.expect("complete spec"), rng);
    vec![
        spec.caption(0),
        changed(&|x| x.cell = Some(cell)),
        changed(&|x| x.colour = Some(colour)),
        changed(&|x| x.shape = Some(shape)),
        changed(&|x| x.size = Some(size)),
        spec.caption(0),
    ]
}

/// Measures the model on the first `images` one-object validation scenes at `timesteps`.
pub fn caption_sensitivity(
    config: &EmbeddedConfig,
    model: &JointModel,
    vq: &VqModel,
    timesteps: &[usize],
    images: usize,
    seed: u64,
) -> anyhow::Result<Vec<ProbeRow>> {
    let chain = config.chain.chain(config.codebook())?;
    let tokenizer = ClipTokenizer::from_pretrained(&repository_tokenizer_dir())?;
    let world = World::default();
    let examples: Vec<_> = (0..)
        .map(|i| world.example(Split::Validation, i))
        .filter(|e| e.scene.objects.len() == 1)
        .take(images)
        .collect();
    let pictures: Vec<_> = examples.iter().map(|e| e.image.clone()).collect();
    let x0 = vq
        .encode(&images_to_tensor(&pictures, &Device::Cpu)?)?
        .flatten_from(1)?
        .to_dtype(DType::U32)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut columns = vec![Vec::new(); VARIANTS.len()];
    for e in &examples {
        for (k, caption) in variants(&SceneSpec::from(&e.scene), &mut rng)
            .into_iter()
            .enumerate()
        {
            columns[k].push(caption);
        }
    }
    let mut rows = Vec::new();
    for &t in timesteps {
        let mut noise = SeededNoise::new(seed ^ t as u64);
        let x_t = chain.q_sample(&x0, t, &mut noise)?;
        let mut nats = Vec::new();
        for (k, captions) in columns.iter().enumerate() {
            let ids = tokenizer.encode_batch(captions)?.to_tensor(&Device::Cpu)?;
            let keep = vec![VARIANTS[k] != "null"; captions.len()];
            let states = model.condition(&ids, &keep)?;
            let context = model.transformer.uncached_context(&states)?;
            let log_p =
                model
                    .transformer
                    .forward_t(&x_t, Timesteps::Shared(t), Some(&context), false)?;
            let nll = log_p
                .gather(&x0.unsqueeze(1)?, 1)?
                .neg()?
                .mean_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            nats.push(nll);
        }
        rows.push(ProbeRow { t, nats });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_changes_exactly_its_attribute() {
        let world = World::default();
        let e = (0..)
            .map(|i| world.example(Split::Validation, i))
            .find(|e| e.scene.objects.len() == 1)
            .unwrap();
        let spec = SceneSpec::from(&e.scene);
        let o = spec.objects[0];
        let captions = variants(&spec, &mut StdRng::seed_from_u64(0));
        assert_eq!(captions.len(), VARIANTS.len());
        assert_eq!(captions[0], spec.caption(0));
        assert_eq!(
            captions[5], captions[0],
            "the null row keeps the caption (unused)"
        );
        for (k, c) in captions.iter().enumerate().take(5).skip(1) {
            assert_ne!(c, &captions[0], "{}", VARIANTS[k]);
        }
        assert!(!captions[2].contains(o.colour.unwrap().word()));
        assert!(captions[1].contains(o.colour.unwrap().word()));
        assert!(!captions[3].contains(o.shape.unwrap().word()));
    }
}
