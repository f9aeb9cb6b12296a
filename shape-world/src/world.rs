//! Seeded sampling of captioned examples, with train / validation / test splits by seed and a
//! held-out split of attribute combinations never seen in training (compositional
//! generalisation): by default the (shape, colour) pairs green triangle, blue circle and yellow
//! square appear only in [`Split::HeldOut`].

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::caption::SceneSpec;
use crate::{BACKGROUNDS, Cell, Colour, Object, Relation, Scene, Shape, Size, render};

/// A data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training scenes (no held-out combination).
    Train,
    /// Validation scenes (same distribution as training, other seeds).
    Validation,
    /// Test scenes (same distribution as training, other seeds).
    Test,
    /// Scenes in which at least one object has a held-out (shape, colour) combination.
    HeldOut,
}

impl Split {
    fn salt(self) -> u64 {
        match self {
            Split::Train => 0x5eed_0001,
            Split::Validation => 0x5eed_0002,
            Split::Test => 0x5eed_0003,
            Split::HeldOut => 0x5eed_0004,
        }
    }
}

/// One captioned example.
#[derive(Debug, Clone)]
pub struct Example {
    /// The scene.
    pub scene: Scene,
    /// Its rendering.
    pub image: RgbImage,
    /// A caption (random phrasing).
    pub caption: String,
}

/// The world's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct World {
    /// Probability that a scene has two objects.
    pub two_object_rate: f64,
    /// (shape, colour) pairs kept out of the training distribution.
    pub held_out: Vec<(Shape, Colour)>,
    /// Base seed of the whole world.
    pub seed: u64,
}

impl Default for World {
    fn default() -> Self {
        Self {
            two_object_rate: 0.5,
            held_out: vec![
                (Shape::Triangle, Colour::Green),
                (Shape::Circle, Colour::Blue),
                (Shape::Square, Colour::Yellow),
            ],
            seed: 0,
        }
    }
}

impl World {
    /// Whether `o` has a held-out combination.
    pub fn is_held_out(&self, o: &Object) -> bool {
        self.held_out.contains(&(o.shape, o.colour))
    }

    /// Example `index` of `split` (deterministic).
    pub fn example(&self, split: Split, index: u64) -> Example {
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ split.salt().wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index,
        );
        loop {
            let (scene, jitter) = self.random_scene(&mut rng);
            let held = scene.objects.iter().any(|o| self.is_held_out(o));
            if held == (split == Split::HeldOut) {
                let caption = SceneSpec::from(&scene).random_caption(&mut rng);
                let image = render(&scene, &jitter);
                return Example {
                    scene,
                    image,
                    caption,
                };
            }
        }
    }

    /// Examples `0..n` of `split`.
    pub fn examples(&self, split: Split, n: usize) -> Vec<Example> {
        (0..n as u64).map(|i| self.example(split, i)).collect()
    }

    fn random_object(rng: &mut StdRng) -> Object {
        let cell = Cell {
            row: rng.random_range(0..3),
            col: rng.random_range(0..3),
        };
        Object {
            shape: Shape::ALL[rng.random_range(0..3)],
            colour: Colour::ALL[rng.random_range(0..6)],
            size: Size::ALL[rng.random_range(0..2)],
            cell,
        }
    }

    /// A random scene and the per-object pixel jitter used to render it.
    fn random_scene(&self, rng: &mut StdRng) -> (Scene, Vec<(i32, i32)>) {
        let background = BACKGROUNDS[rng.random_range(0..BACKGROUNDS.len())];
        let first = Self::random_object(rng);
        let mut objects = vec![first];
        let mut relation = None;
        if rng.random::<f64>() < self.two_object_rate {
            loop {
                let second = Self::random_object(rng);
                if second.cell != first.cell && second.colour != first.colour {
                    let holding: Vec<Relation> = Relation::ALL
                        .iter()
                        .copied()
                        .filter(|r| r.holds(first.cell, second.cell))
                        .collect();
                    relation = Some(holding[rng.random_range(0..holding.len())]);
                    objects.push(second);
                    break;
                }
            }
        }
        let jitter = objects
            .iter()
            .map(|o| {
                let slack = if o.size == Size::Large { 0 } else { 1 };
                (
                    rng.random_range(-slack..=slack),
                    rng.random_range(-slack..=slack),
                )
            })
            .collect();
        (
            Scene {
                background,
                objects,
                relation,
            },
            jitter,
        )
    }
}
