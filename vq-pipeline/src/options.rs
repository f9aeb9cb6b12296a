//! Generation settings — the library mirror of `vqd generate`'s options, as a builder — and the
//! named samplers they select.

use discrete_diffusion::{
    ImprovedPrior, PriorRule, SamplerConfig, SamplingMethod, TimestepPlan, Truncation,
    UnmaskSchedule,
};
use serde::{Deserialize, Serialize};

use crate::sampler_settings::SamplerSettings;
use crate::{Error, Result};

/// The samplers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum SamplerChoice {
    /// diffusers' behaviour: `--steps S` runs only the LAST S steps of the chain from an
    /// all-mask state (S = T: the full chain). The default, for compatibility.
    Diffusers,
    /// The full chain, T steps (VQ-Diffusion v1).
    Full,
    /// Paper §4.3 fast inference done exactly: S evenly spaced steps with the true Δ-step posterior.
    Strided,
    /// The original repository's `sample_fast` approximation (infer_speed ≈ T/S).
    FastOriginal,
    /// Improved VQ-Diffusion's high-quality sampler (prior rule 1: random unmasking order).
    HighQuality,
    /// Improved VQ-Diffusion's purity prior (rule 2), with `--prior-weight`.
    Purity,
    /// MaskGIT: `--steps` calls (default 16), the most confident candidates first, cosine
    /// schedule, choice temperature 4.5 (`--choice-temperature`, `--unmask-schedule`,
    /// `--temperature`).
    #[serde(rename = "maskgit")]
    #[cfg_attr(feature = "cli", value(name = "maskgit"))]
    MaskGit,
    /// Halton-MaskGIT: `--steps` calls, positions in the Halton order over the token grid.
    Halton,
    /// `--steps` calls, uniformly random positions (MaskGIT's schedule).
    RandomOrder,
    /// ReMDM: random order with remasking of committed tokens at rate `--remask`.
    Remdm,
    /// Confidence-threshold commits (`--threshold`), with editing (`--edit-threshold`).
    Threshold,
    /// The entropy-bounded sampler (`--entropy-bound`, nats).
    EntropyBounded,
    /// Model calls only where a masked token leaves the mask (exact for the mask chain).
    FirstHitting,
    /// The strided posterior with forward-backward corrector steps (`--corrector-steps`,
    /// `--corrected-steps`).
    PredictorCorrector,
    /// The preset for a small budget: the sampler measured best at about 10 model calls on the
    /// embedded model (docs/results.md §10) — the exact strided posterior with
    /// [`FAST_PRESET_STEPS`] calls unless `--steps` says otherwise.
    Fast,
}

/// Model calls of the `fast` preset when `--steps` is not given.
pub const FAST_PRESET_STEPS: usize = 10;

impl SamplerChoice {
    /// The sampler's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SamplerChoice::Diffusers => "diffusers",
            SamplerChoice::Full => "full",
            SamplerChoice::Strided => "strided",
            SamplerChoice::FastOriginal => "fast-original",
            SamplerChoice::HighQuality => "high-quality",
            SamplerChoice::Purity => "purity",
            SamplerChoice::MaskGit => "maskgit",
            SamplerChoice::Halton => "halton",
            SamplerChoice::RandomOrder => "random-order",
            SamplerChoice::Remdm => "remdm",
            SamplerChoice::Threshold => "threshold",
            SamplerChoice::EntropyBounded => "entropy-bounded",
            SamplerChoice::FirstHitting => "first-hitting",
            SamplerChoice::PredictorCorrector => "predictor-corrector",
            SamplerChoice::Fast => "fast",
        }
    }

    /// Every sampler, in the order `vqd generate --help` lists them.
    pub const ALL: [SamplerChoice; 15] = [
        SamplerChoice::Diffusers,
        SamplerChoice::Full,
        SamplerChoice::Strided,
        SamplerChoice::FastOriginal,
        SamplerChoice::HighQuality,
        SamplerChoice::Purity,
        SamplerChoice::MaskGit,
        SamplerChoice::Halton,
        SamplerChoice::RandomOrder,
        SamplerChoice::Remdm,
        SamplerChoice::Threshold,
        SamplerChoice::EntropyBounded,
        SamplerChoice::FirstHitting,
        SamplerChoice::PredictorCorrector,
        SamplerChoice::Fast,
    ];

    /// Whether `--steps` is the sampler's own choice of model calls rather than fixed by it.
    pub fn takes_steps(self) -> bool {
        !matches!(
            self,
            SamplerChoice::Full
                | SamplerChoice::HighQuality
                | SamplerChoice::Purity
                | SamplerChoice::Threshold
                | SamplerChoice::EntropyBounded
                | SamplerChoice::FirstHitting
        )
    }
}

/// Which null condition classifier-free guidance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum NullCondition {
    /// The model's learned null embedding if it has one, else the empty prompt.
    #[default]
    Auto,
    /// The learned null embedding (error if the model has none).
    Learned,
    /// The CLIP embedding of the empty prompt.
    EmptyPrompt,
}

/// Every setting of one generation run except the randomness, which the
/// [`discrete_diffusion::NoiseSource`] passed to [`crate::VqDiffusionPipeline::generate`] owns
/// (a seeded source records its seed in the result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationOptions {
    /// Prompts (one batch entry each).
    pub prompts: Vec<String>,
    /// Images per prompt.
    pub num_images_per_prompt: usize,
    /// Sampler.
    pub sampler: SamplerChoice,
    /// Number of steps / model calls (default: T).
    pub steps: Option<usize>,
    /// Classifier-free guidance scale (1 = off; diffusers' default 5).
    pub guidance_scale: f64,
    /// Truncation of p̂(x₀) (diffusers' default `truncation_rate = 1.0`).
    pub truncation: Truncation,
    /// Null condition for guidance.
    pub null_condition: NullCondition,
    /// `r` of the purity prior (rule 2).
    pub prior_weight: f64,
    /// Maximum positions unmasked per model call for the improved samplers (default: no limit).
    pub unmask_per_call: Option<usize>,
    /// Settings of the MaskGIT-family, threshold, entropy-bounded and predictor-corrector
    /// samplers (each `None` = that sampler's default).
    #[serde(default, skip_serializing_if = "SamplerSettings::is_empty")]
    pub sampler_settings: SamplerSettings,
}

impl GenerationOptions {
    /// Defaults of diffusers' `VQDiffusionPipeline.__call__` for `prompts`.
    pub fn new<S: Into<String>>(prompts: impl IntoIterator<Item = S>) -> Self {
        Self {
            prompts: prompts.into_iter().map(Into::into).collect(),
            num_images_per_prompt: 1,
            sampler: SamplerChoice::Diffusers,
            steps: None,
            guidance_scale: 5.0,
            truncation: Truncation::TopR(1.0),
            null_condition: NullCondition::Auto,
            prior_weight: 1.0,
            unmask_per_call: None,
            sampler_settings: SamplerSettings::default(),
        }
    }
    /// Sets images per prompt.
    pub fn num_images_per_prompt(mut self, n: usize) -> Self {
        self.num_images_per_prompt = n;
        self
    }
    /// Sets the sampler.
    pub fn sampler(mut self, sampler: SamplerChoice) -> Self {
        self.sampler = sampler;
        self
    }
    /// Sets the number of steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = Some(steps);
        self
    }
    /// Sets the guidance scale.
    pub fn guidance_scale(mut self, scale: f64) -> Self {
        self.guidance_scale = scale;
        self
    }
    /// Sets the truncation.
    pub fn truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }
    /// Sets the null condition.
    pub fn null_condition(mut self, null: NullCondition) -> Self {
        self.null_condition = null;
        self
    }
    /// Sets the purity prior weight.
    pub fn prior_weight(mut self, r: f64) -> Self {
        self.prior_weight = r;
        self
    }
    /// Sets the newer samplers' settings.
    pub fn sampler_settings(mut self, settings: SamplerSettings) -> Self {
        self.sampler_settings = settings;
        self
    }
    /// Sets the improved samplers' positions per call.
    pub fn unmask_per_call(mut self, n: usize) -> Self {
        self.unmask_per_call = Some(n);
        self
    }

    /// Checks every option against a model trained with `num_timesteps` steps.
    pub fn validate(&self, num_timesteps: usize) -> Result<()> {
        if let Some(i) = self.prompts.iter().position(|p| p.trim().is_empty()) {
            return Err(Error::InvalidOption(format!(
                "prompt {} is empty; describe the image to generate",
                i + 1
            )));
        }
        self.validate_allowing_empty_prompts(num_timesteps)
    }

    /// [`GenerationOptions::validate`] without the rule against empty prompts: an edit may be
    /// unconditional (an empty prompt conditions on the null condition).
    pub fn validate_allowing_empty_prompts(&self, num_timesteps: usize) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidOption(m));
        if self.prompts.is_empty() {
            return bad("no prompt given".into());
        }
        if self.num_images_per_prompt == 0 {
            return bad("--num-images must be at least 1".into());
        }
        self.batch_size()?;
        if !self.guidance_scale.is_finite() || !(1.0..=100.0).contains(&self.guidance_scale) {
            return bad(format!(
                "guidance scale {} is out of range [1, 100] (1 = no guidance)",
                self.guidance_scale
            ));
        }
        self.truncation
            .validate()
            .map_err(|e| Error::InvalidOption(e.to_string()))?;
        if let Some(s) = self.steps {
            if s == 0 {
                return bad("--steps must be at least 1".into());
            }
            if s > num_timesteps {
                return bad(format!(
                    "--steps {s} is more than the {num_timesteps} steps the model was trained with"
                ));
            }
        }
        if !self.prior_weight.is_finite() || self.prior_weight < 0.0 {
            return bad(format!("prior weight {} must be ≥ 0", self.prior_weight));
        }
        if self.unmask_per_call == Some(0) {
            return bad("--unmask-per-call must be at least 1".into());
        }
        self.sampler_settings
            .validate(self.sampler, self.steps, num_timesteps)?;
        self.refuse_ineffective()
    }

    /// The batch size `prompts × num_images_per_prompt`, refused when it does not fit in
    /// memory addressing (`u32` row indices).
    pub fn batch_size(&self) -> Result<usize> {
        self.prompts
            .len()
            .checked_mul(self.num_images_per_prompt)
            .filter(|&b| b <= u32::MAX as usize)
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "{} prompts × {} images per prompt is too many images for one run; \
                     generate in batches (GenerationOptions::batches, vqd --batch-size)",
                    self.prompts.len(),
                    self.num_images_per_prompt
                ))
            })
    }

    /// Settings that would have no effect are errors, so a run never records a setting it did
    /// not honour.
    fn refuse_ineffective(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidOption(m));
        let name = self.sampler.name();
        if self.steps.is_some() && !self.sampler.takes_steps() {
            return bad(format!(
                "--steps has no effect with the {name} sampler (it chooses its own model calls); \
                 use --sampler strided, halton, maskgit, diffusers or fast-original to choose the \
                 number of steps"
            ));
        }
        if self.unmask_per_call.is_some()
            && !matches!(
                self.sampler,
                SamplerChoice::HighQuality | SamplerChoice::Purity
            )
        {
            return bad(format!(
                "--unmask-per-call has no effect with the {name} sampler (only high-quality and \
                 purity unmask a bounded number of positions per call)"
            ));
        }
        if self.prior_weight != 1.0 && self.sampler != SamplerChoice::Purity {
            return bad(format!(
                "--prior-weight has no effect with the {name} sampler (only purity uses it)"
            ));
        }
        let unconditional_rows = self.prompts.iter().any(|p| p.trim().is_empty());
        if self.null_condition != NullCondition::Auto
            && self.guidance_scale <= 1.0
            && !unconditional_rows
        {
            return bad(
                "--null has no effect without guidance (guidance scale 1); set --guidance-scale > 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The options split into runs of at most `batch_size` images each, in order (prompt by
    /// prompt, image by image), so a long job runs in bounded memory. Sampling the runs in
    /// order from one noise source is deterministic for a seed and a batch size; a single run
    /// (every image fits) is these options unchanged, so it draws exactly the noise of one call.
    pub fn batches(&self, batch_size: usize) -> Result<Vec<GenerationOptions>> {
        if batch_size == 0 {
            return Err(Error::InvalidOption(
                "--batch-size must be at least 1".into(),
            ));
        }
        let total = self.batch_size()?;
        if total <= batch_size {
            return Ok(vec![self.clone()]);
        }
        let n = self.num_images_per_prompt;
        let mut runs = Vec::with_capacity(total.div_ceil(batch_size));
        let mut first = 0;
        while first < total {
            let last = (first + batch_size).min(total);
            let mut run = self.clone();
            run.prompts = (first..last).map(|i| self.prompts[i / n].clone()).collect();
            run.num_images_per_prompt = 1;
            runs.push(run);
            first = last;
        }
        Ok(runs)
    }

    /// The settings that take effect, for a record of the run: the sampler's step count only
    /// where it chooses one, the purity weight only for purity, the null condition only with
    /// guidance (or an unconditional prompt).
    pub fn effective_settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("plain struct");
        let map = v.as_object_mut().expect("a struct is an object");
        let unconditional_rows = self.prompts.iter().any(|p| p.trim().is_empty());
        if self.guidance_scale <= 1.0 && !unconditional_rows {
            map.remove("null_condition");
        }
        if self.sampler != SamplerChoice::Purity {
            map.remove("prior_weight");
        }
        if !matches!(
            self.sampler,
            SamplerChoice::HighQuality | SamplerChoice::Purity
        ) || self.unmask_per_call.is_none()
        {
            map.remove("unmask_per_call");
        }
        if self.steps.is_none() {
            map.remove("steps");
        }
        v
    }

    /// The prompt of each image (prompt-major: `num_images_per_prompt` per prompt).
    pub fn image_prompts(&self) -> Vec<String> {
        self.prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), self.num_images_per_prompt))
            .collect()
    }

    /// The `discrete-diffusion` sampler configuration for a chain of `num_timesteps` steps over
    /// `num_tokens` positions.
    pub fn sampler_config(&self, num_timesteps: usize, num_tokens: usize) -> SamplerConfig {
        let steps = self.steps.unwrap_or(num_timesteps);
        let improved = |rule| {
            SamplingMethod::ImprovedPrior(ImprovedPrior {
                rule,
                max_per_call: self.unmask_per_call.unwrap_or(num_tokens),
                schedule: if num_timesteps == 100 && num_tokens == 1024 {
                    UnmaskSchedule::original_ithq(self.unmask_per_call.unwrap_or(num_tokens))
                } else {
                    UnmaskSchedule::Even
                },
            })
        };
        if let Some(method) = self
            .sampler_settings
            .method(self.sampler, self.steps, num_timesteps)
        {
            let plan = match (self.sampler, self.steps) {
                (SamplerChoice::PredictorCorrector, Some(s)) if s < num_timesteps => {
                    TimestepPlan::Strided(s)
                }
                _ => TimestepPlan::Full,
            };
            return SamplerConfig {
                plan,
                truncation: self.truncation,
                method,
                start: None,
            };
        }
        let (plan, method) = match self.sampler {
            SamplerChoice::Diffusers => (TimestepPlan::LastSteps(steps), SamplingMethod::Posterior),
            SamplerChoice::Full => (TimestepPlan::Full, SamplingMethod::Posterior),
            SamplerChoice::Strided => (TimestepPlan::Strided(steps), SamplingMethod::Posterior),
            SamplerChoice::Fast => (
                TimestepPlan::Strided(self.steps.unwrap_or(FAST_PRESET_STEPS).min(num_timesteps)),
                SamplingMethod::Posterior,
            ),
            SamplerChoice::FastOriginal => (
                TimestepPlan::SampleFast(
                    (num_timesteps as f64 / steps as f64).round().max(1.0) as usize
                ),
                SamplingMethod::Posterior,
            ),
            SamplerChoice::HighQuality => (TimestepPlan::Full, improved(PriorRule::Random)),
            SamplerChoice::Purity => (
                TimestepPlan::Full,
                improved(PriorRule::Purity {
                    prior_weight: self.prior_weight,
                }),
            ),
            // Described by the sampler settings above.
            _ => (TimestepPlan::Full, SamplingMethod::Posterior),
        };
        SamplerConfig {
            plan,
            truncation: self.truncation,
            method,
            start: None,
        }
    }
}
