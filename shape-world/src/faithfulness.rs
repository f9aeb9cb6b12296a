//! Caption faithfulness: does an image show what its prompt (a [`SceneSpec`]) asks for?
//! Scored by the [`crate::oracle`] per attribute (shape, colour, size, position, and for two
//! objects the relation and the object count) and as "all correct", separately for single- and
//! two-object prompts. Unspecified attributes are not scored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::caption::{ObjectSpec, SceneSpec};
use crate::oracle::Detection;

/// Per-attribute verdicts for one image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Verdict {
    /// attribute name → correct?
    pub attributes: BTreeMap<&'static str, bool>,
}

impl Verdict {
    /// Every scored attribute is correct.
    pub fn all_correct(&self) -> bool {
        self.attributes.values().all(|&v| v)
    }
}

fn score_object(
    verdict: &mut Verdict,
    prefix: usize,
    spec: &ObjectSpec,
    found: Option<&Detection>,
) {
    let names: [[&'static str; 4]; 2] = [
        ["shape", "colour", "size", "position"],
        [
            "shape (2nd)",
            "colour (2nd)",
            "size (2nd)",
            "position (2nd)",
        ],
    ];
    let n = &names[prefix.min(1)];
    let checks = [
        spec.shape.map(|s| found.is_some_and(|d| d.shape == s)),
        spec.colour.map(|c| found.is_some_and(|d| d.colour == c)),
        spec.size.map(|s| found.is_some_and(|d| d.size == s)),
        spec.cell.map(|c| found.is_some_and(|d| d.cell == c)),
    ];
    for (name, check) in n.iter().zip(checks) {
        if let Some(ok) = check {
            verdict.attributes.insert(name, ok);
        }
    }
}

/// How well `detections` (from [`crate::analyse`]) match `spec`.
///
/// Each specified object is matched to the detection agreeing with it on the most specified
/// attributes (colour first: two-object scenes have distinct colours); the object count must
/// equal the number of specified objects; for two objects the relation is read from the matched
/// detections' cells.
pub fn judge(spec: &SceneSpec, detections: &[Detection]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut used = vec![false; detections.len()];
    let mut matched: Vec<Option<Detection>> = Vec::new();
    for (i, o) in spec.objects.iter().enumerate() {
        let score = |d: &Detection| {
            3 * usize::from(o.colour == Some(d.colour))
                + usize::from(o.shape == Some(d.shape))
                + usize::from(o.size == Some(d.size))
                + usize::from(o.cell == Some(d.cell))
        };
        let best = (0..detections.len())
            .filter(|&j| !used[j])
            .max_by_key(|&j| (score(&detections[j]), detections[j].area));
        if let Some(j) = best {
            used[j] = true;
        }
        let found = best.map(|j| detections[j]);
        score_object(&mut verdict, i, o, found.as_ref());
        matched.push(found);
    }
    verdict
        .attributes
        .insert("count", detections.len() == spec.objects.len());
    if let (Some(r), [Some(a), Some(b)]) = (spec.relation, matched.as_slice()) {
        verdict
            .attributes
            .insert("relation", r.holds(a.cell, b.cell));
    } else if spec.relation.is_some() {
        verdict.attributes.insert("relation", false);
    }
    verdict
}

/// Accumulated faithfulness rates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FaithfulnessReport {
    /// attribute → (correct, scored).
    pub per_attribute: BTreeMap<String, (usize, usize)>,
    /// Images with every scored attribute correct.
    pub all_correct: usize,
    /// Images scored.
    pub images: usize,
}

impl FaithfulnessReport {
    /// Adds one verdict.
    pub fn add(&mut self, verdict: &Verdict) {
        for (name, &ok) in &verdict.attributes {
            let entry = self.per_attribute.entry(name.to_string()).or_default();
            entry.0 += usize::from(ok);
            entry.1 += 1;
        }
        self.all_correct += usize::from(verdict.all_correct());
        self.images += 1;
    }

    /// Rate of one attribute (None if never scored).
    pub fn rate(&self, attribute: &str) -> Option<f64> {
        self.per_attribute
            .get(attribute)
            .map(|&(c, n)| c as f64 / n.max(1) as f64)
    }

    /// Rate of all-correct images.
    pub fn all_correct_rate(&self) -> f64 {
        self.all_correct as f64 / self.images.max(1) as f64
    }
}
