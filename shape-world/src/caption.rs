//! The caption grammar. A caption describes a [`SceneSpec`] — a scene with possibly missing
//! attributes (so "a circle" is a valid, under-specified prompt) — in one of several phrasings,
//! so a text encoder must learn meaning rather than strings:
//!
//! * "a small red circle in the top left"
//! * "top left: small red circle"
//! * "there is a small red circle at the top left"
//! * "a small red circle, top left"
//! * two objects: "a red circle left of a blue square", "a red circle is left of a blue square",
//!   "a blue square with a red circle to its left" …

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Cell, Colour, Object, Relation, Scene, Shape, Size};

/// A possibly incomplete description of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ObjectSpec {
    /// Shape, if specified.
    pub shape: Option<Shape>,
    /// Colour, if specified.
    pub colour: Option<Colour>,
    /// Size, if specified.
    pub size: Option<Size>,
    /// Grid cell, if specified.
    pub cell: Option<Cell>,
}

/// A possibly incomplete description of a scene: what a prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SceneSpec {
    /// One or two objects.
    pub objects: Vec<ObjectSpec>,
    /// For two objects, the asked relation of the first to the second.
    pub relation: Option<Relation>,
}

impl From<&Object> for ObjectSpec {
    fn from(o: &Object) -> Self {
        Self {
            shape: Some(o.shape),
            colour: Some(o.colour),
            size: Some(o.size),
            cell: Some(o.cell),
        }
    }
}

impl From<&Scene> for SceneSpec {
    fn from(s: &Scene) -> Self {
        Self {
            objects: s.objects.iter().map(ObjectSpec::from).collect(),
            relation: s.relation,
        }
    }
}

impl SceneSpec {
    /// What a complete caption of `scene` asks for: every attribute of a single object; for two
    /// objects every attribute but the grid cells, which their captions do not name (they state
    /// the relation instead). Score generations of a caption against this, not against the full
    /// scene, or a two-object image is wrong whenever its objects sit in other cells than the
    /// scene the caption came from.
    pub fn captioned(scene: &Scene) -> Self {
        let mut spec = Self::from(scene);
        if spec.relation.is_some() {
            for o in &mut spec.objects {
                o.cell = None;
            }
        }
        spec
    }
}

/// Number of phrasings for a single object.
pub const SINGLE_PHRASINGS: usize = 4;
/// Number of phrasings for two objects.
pub const PAIR_PHRASINGS: usize = 3;

fn noun_phrase(o: &ObjectSpec) -> String {
    let mut words: Vec<&str> = Vec::new();
    if let Some(s) = o.size {
        words.push(s.word());
    }
    if let Some(c) = o.colour {
        words.push(c.word());
    }
    words.push(o.shape.map_or("shape", Shape::word));
    words.join(" ")
}

fn article(phrase: &str) -> &'static str {
    if phrase.starts_with(|c: char| "aeiou".contains(c)) {
        "an"
    } else {
        "a"
    }
}

fn with_article(phrase: String) -> String {
    format!("{} {phrase}", article(&phrase))
}

impl SceneSpec {
    /// The caption in phrasing `variant` (taken modulo the number of phrasings).
    pub fn caption(&self, variant: usize) -> String {
        match (self.objects.as_slice(), self.relation) {
            ([o], _) | ([o, _], None) => {
                let np = noun_phrase(o);
                match (o.cell, variant % SINGLE_PHRASINGS) {
                    (None, 0 | 3) => with_article(np),
                    (None, 1) => format!("there is {}", with_article(np)),
                    (None, _) => np,
                    (Some(c), 0) => format!("{} in the {}", with_article(np), c.words()),
                    (Some(c), 1) => format!("{}: {np}", c.words()),
                    (Some(c), 2) => format!("there is {} at the {}", with_article(np), c.words()),
                    (Some(c), _) => format!("{}, {}", with_article(np), c.words()),
                }
            }
            ([a, b], Some(r)) => {
                let (na, nb) = (with_article(noun_phrase(a)), with_article(noun_phrase(b)));
                match variant % PAIR_PHRASINGS {
                    0 => format!("{na} {} {nb}", r.words()),
                    1 => format!("{na} is {} {nb}", r.words()),
                    _ => {
                        let side = match r {
                            Relation::LeftOf => "to its left",
                            Relation::RightOf => "to its right",
                            Relation::Above => "above it",
                            Relation::Below => "below it",
                        };
                        format!("{nb} with {na} {side}")
                    }
                }
            }
            _ => String::new(),
        }
    }

    /// A caption in a randomly chosen phrasing.
    pub fn random_caption(&self, rng: &mut impl Rng) -> String {
        self.caption(rng.random_range(0..SINGLE_PHRASINGS.max(PAIR_PHRASINGS)))
    }
}
