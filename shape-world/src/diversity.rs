//! Diversity for under-specified prompts ("a circle": are colours and positions spread as in the
//! data?): histograms of the oracle's attribute readings over generated images, compared with a
//! reference histogram (the data's) by total-variation distance and normalised entropy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::oracle::Detection;

/// Which attribute to histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// Shape.
    Shape,
    /// Colour.
    Colour,
    /// Size.
    Size,
    /// Grid cell.
    Position,
}

/// A normalised histogram over attribute values (keys are the values' debug names).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Histogram(pub BTreeMap<String, f64>);

impl Histogram {
    /// Histogram of `attribute` over the largest detection of each image (images with no
    /// detection count under "none").
    pub fn of(attribute: Attribute, images: &[Vec<Detection>]) -> Self {
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for detections in images {
            let key = match detections.first() {
                None => "none".to_string(),
                Some(d) => match attribute {
                    Attribute::Shape => format!("{:?}", d.shape),
                    Attribute::Colour => format!("{:?}", d.colour),
                    Attribute::Size => format!("{:?}", d.size),
                    Attribute::Position => format!("{}{}", d.cell.row, d.cell.col),
                },
            };
            *counts.entry(key).or_default() += 1.0;
        }
        let total: f64 = counts.values().sum::<f64>().max(1.0);
        Histogram(counts.into_iter().map(|(k, v)| (k, v / total)).collect())
    }

    /// Total-variation distance to `other`.
    pub fn total_variation(&self, other: &Histogram) -> f64 {
        let keys: std::collections::BTreeSet<&String> =
            self.0.keys().chain(other.0.keys()).collect();
        0.5 * keys
            .into_iter()
            .map(|k| (self.0.get(k).unwrap_or(&0.0) - other.0.get(k).unwrap_or(&0.0)).abs())
            .sum::<f64>()
    }

    /// Entropy divided by `ln(number of possible values)`.
    pub fn normalised_entropy(&self, possible_values: usize) -> f64 {
        let h: f64 = self
            .0
            .values()
            .filter(|&&p| p > 0.0)
            .map(|p| -p * p.ln())
            .sum();
        h / (possible_values as f64).ln()
    }
}
