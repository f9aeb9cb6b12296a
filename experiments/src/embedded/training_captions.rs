//! The captions the denoiser is trained with. Each time an example is drawn it gets a fresh
//! phrasing from shape-world's grammar (so the text encoder has to learn meaning, not strings),
//! and with probability `partial_rate` a one-object caption leaves out a random subset of the
//! size, colour, position and (rarely) shape, which teaches the under-specified prompts ("a
//! circle", "a red shape in the top left") the diversity metric asks for. Two-object captions are
//! always complete: the relation needs both objects.

use rand::Rng;
use shape_world::{Scene, SceneSpec};

/// A training caption for `scene`.
pub fn training_caption(scene: &Scene, partial_rate: f64, rng: &mut impl Rng) -> String {
    training_spec(scene, partial_rate, rng).random_caption(rng)
}

/// What a training caption of `scene` will say: the full scene, or with probability
/// `partial_rate` (one object only) a random subset of its attributes.
pub fn training_spec(scene: &Scene, partial_rate: f64, rng: &mut impl Rng) -> SceneSpec {
    let mut spec = SceneSpec::from(scene);
    if spec.objects.len() == 1 && rng.random::<f64>() < partial_rate {
        let o = &mut spec.objects[0];
        if rng.random::<f64>() < 0.5 {
            o.size = None;
        }
        if rng.random::<f64>() < 0.5 {
            o.colour = None;
        }
        if rng.random::<f64>() < 0.5 {
            o.cell = None;
        }
        if rng.random::<f64>() < 0.2 {
            o.shape = None;
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use shape_world::{Split, World};

    #[test]
    fn complete_captions_name_every_attribute_and_partial_ones_drop_some() {
        let world = World::default();
        let mut rng = StdRng::seed_from_u64(1);
        let single = (0..)
            .map(|i| world.example(Split::Train, i))
            .find(|e| e.scene.objects.len() == 1)
            .unwrap();
        let o = single.scene.objects[0];
        let full = training_caption(&single.scene, 0.0, &mut rng);
        assert!(
            full.contains(o.colour.word()) && full.contains(o.shape.word()),
            "{full}"
        );
        let shorter = (0..50)
            .map(|_| training_caption(&single.scene, 1.0, &mut rng))
            .filter(|c| c.len() < full.len().saturating_sub(4))
            .count();
        assert!(shorter > 10);
    }
}
