//! # shape-world
//!
//! The data and the judge of the project's embedded VQ-Diffusion model: a procedural, seeded world
//! of captioned 32×32 images (one or two coloured shapes on a plain background, at positions of a
//! 3×3 grid, with a spatial relation between two objects), an image-analysis **oracle** that reads
//! a scene back from any image, and the metrics built on it: caption faithfulness per attribute and
//! all-correct, and diversity for under-specified prompts.
//!
//! ```
//! use shape_world::{Split, World, analyse, judge, SceneSpec};
//! let world = World::default();
//! let example = world.example(Split::Train, 0);
//! let verdict = judge(&SceneSpec::from(&example.scene), &analyse(&example.image));
//! assert!(verdict.all_correct(), "{}: {verdict:?}", example.caption);
//! ```

mod caption;
mod diversity;
mod faithfulness;
mod feature_net;
mod frechet;
mod oracle;
mod render;
mod scene;
mod world;

pub use caption::{ObjectSpec, PAIR_PHRASINGS, SINGLE_PHRASINGS, SceneSpec};
pub use diversity::{Attribute, Histogram};
pub use faithfulness::{FaithfulnessReport, Verdict, judge};
pub use feature_net::{FEATURES, FeatureNet, HEADS, SHIPPED_WEIGHTS, images_to_tensor, targets};
pub use frechet::{frechet_distance, mean_and_covariance, symmetric_eigen};
pub use oracle::{COLOUR_TOLERANCE, Detection, MIN_AREA, analyse};
pub use render::{covers, render};
pub use scene::{BACKGROUNDS, Cell, Colour, IMAGE_SIZE, Object, Relation, Scene, Shape, Size};
pub use world::{Example, Split, World};

#[cfg(test)]
mod tests;
