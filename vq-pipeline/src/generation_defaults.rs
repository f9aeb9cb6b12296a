//! A model's recommended sampling settings: the optional `generation_config.json` at the root
//! of a pipeline folder (the file name and role follow transformers' `generation_config.json`;
//! diffusers ignores it). Without it a model samples with the defaults of diffusers'
//! `VQDiffusionPipeline.__call__` (guidance 5, no truncation); the embedded shape-world model
//! ships one because guidance 5 over-saturates a model that small (docs/results.md §4).
//!
//! ```json
//! { "guidance_scale": 1.5, "truncation_rate": 1.0 }
//! ```
//!
//! Unknown fields are an error (a misspelt setting must not be silently ignored).

use std::path::Path;

use discrete_diffusion::Truncation;
use serde::{Deserialize, Serialize};

use crate::error::{io, read_json};
use crate::{Error, GenerationOptions, Result};

/// File name of the recommendations, at the pipeline folder's root.
pub const GENERATION_CONFIG: &str = "generation_config.json";

/// Recommended settings; absent fields keep diffusers' defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationDefaults {
    /// Classifier-free guidance scale (> 0; 1 = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    /// Truncation rate (top-r, in (0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation_rate: Option<f32>,
}

impl GenerationDefaults {
    /// Reads `root/generation_config.json`; `Default` (diffusers' defaults) when it is absent.
    pub fn from_pretrained(root: &Path) -> Result<Self> {
        let path = root.join(GENERATION_CONFIG);
        if !path.is_file() {
            return Ok(Self::default());
        }
        let invalid = |reason: String| Error::InvalidFile {
            path: path.clone(),
            reason,
        };
        let defaults: Self = read_json(&path)?;
        if let Some(s) = defaults.guidance_scale
            && !(s.is_finite() && s > 0.0)
        {
            return Err(invalid(format!(
                "guidance_scale {s} must be a finite number > 0"
            )));
        }
        if let Some(r) = defaults.truncation_rate
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(invalid(format!("truncation_rate {r} must be in (0, 1]")));
        }
        Ok(defaults)
    }

    /// `options` with these recommendations applied.
    pub fn apply(&self, mut options: GenerationOptions) -> GenerationOptions {
        if let Some(s) = self.guidance_scale {
            options.guidance_scale = s;
        }
        if let Some(r) = self.truncation_rate {
            options.truncation = Truncation::TopR(r);
        }
        options
    }

    /// Writes `root/generation_config.json`.
    pub fn write(&self, root: &Path) -> Result<()> {
        let path = root.join(GENERATION_CONFIG);
        let json = serde_json::to_string_pretty(self).expect("plain struct");
        std::fs::write(&path, json + "\n").map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with(text: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(t) = text {
            std::fs::write(dir.path().join(GENERATION_CONFIG), t).unwrap();
        }
        dir
    }

    #[test]
    fn absent_file_keeps_the_diffusers_defaults() {
        let dir = folder_with(None);
        let d = GenerationDefaults::from_pretrained(dir.path()).unwrap();
        assert_eq!(d, GenerationDefaults::default());
        let o = d.apply(GenerationOptions::new(["x"]));
        assert_eq!(o.guidance_scale, 5.0);
    }

    #[test]
    fn recommendations_apply_and_round_trip() {
        let dir = folder_with(None);
        let d = GenerationDefaults {
            guidance_scale: Some(1.5),
            truncation_rate: Some(0.9),
        };
        d.write(dir.path()).unwrap();
        let back = GenerationDefaults::from_pretrained(dir.path()).unwrap();
        assert_eq!(back, d);
        let o = back.apply(GenerationOptions::new(["x"]));
        assert_eq!(o.guidance_scale, 1.5);
        assert_eq!(o.truncation, Truncation::TopR(0.9));
    }

    #[test]
    fn bad_files_name_the_file_and_the_field() {
        let typo = folder_with(Some(r#"{"guidance": 2}"#));
        let err = GenerationDefaults::from_pretrained(typo.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(GENERATION_CONFIG) && err.contains("guidance"),
            "{err}"
        );
        let negative = folder_with(Some(r#"{"guidance_scale": -1}"#));
        let err = GenerationDefaults::from_pretrained(negative.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("guidance_scale -1"), "{err}");
    }
}
