//! Scoring one sampler setting of a trained model on a fixed prompt set — the measurement behind
//! the `strided` and `guidance` studies (VQ-Diffusion §4.3 fast inference; Improved
//! VQ-Diffusion §3–4: learned null, truncation, purity prior). Every variant generates one image
//! per prompt through the real pipeline with the same seeds, and is scored by shape-world's
//! oracle (all-correct rate on single- and two-object test prompts), our FID against the real
//! images of the same prompts, and wall time per image on this machine.

use std::path::PathBuf;
use std::time::Instant;

use discrete_diffusion::SeededNoise;
use image::RgbImage;
use serde::Serialize;
use shape_world::{FaithfulnessReport, FeatureNet, SceneSpec, Split, World, analyse, judge};
use vq_pipeline::{GenerationOptions, VqDiffusionPipeline};

use crate::result_table::ResultTable;

/// Test-split prompts with their specs and real images.
pub struct PromptSet {
    /// What each prompt asks for.
    pub specs: Vec<SceneSpec>,
    /// The prompts (varied phrasings).
    pub prompts: Vec<String>,
    /// The real image each prompt was written for.
    pub real: Vec<RgbImage>,
    /// Objects in each scene (1 or 2).
    pub objects: Vec<usize>,
}

impl PromptSet {
    /// The first `single` one-object and `pair` two-object scenes of `split`.
    pub fn new(split: Split, single: usize, pair: usize) -> Self {
        let world = World::default();
        let mut set = PromptSet {
            specs: Vec::new(),
            prompts: Vec::new(),
            real: Vec::new(),
            objects: Vec::new(),
        };
        for (objects, n) in [(1, single), (2, pair)] {
            let examples = (0..)
                .map(|i| world.example(split, i))
                .filter(|e| e.scene.objects.len() == objects)
                .take(n);
            for e in examples {
                let spec = SceneSpec::captioned(&e.scene);
                set.prompts.push(spec.caption(set.specs.len()));
                set.specs.push(spec);
                set.real.push(e.image);
                set.objects.push(objects);
            }
        }
        set
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// One-object and two-object prompts.
    pub fn counts(&self) -> (usize, usize) {
        let pairs = self.objects.iter().filter(|&&k| k == 2).count();
        (self.len() - pairs, pairs)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// The scores of one variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantScore {
    /// What was varied, e.g. `strided S=10`.
    pub label: String,
    /// All-correct rate on one-object prompts.
    pub single_all_correct: f64,
    /// All-correct rate on two-object prompts (objects, relation, count).
    pub pair_all_correct: f64,
    /// Our FID of the generations against the real images of the same prompts.
    pub fid: f64,
    /// Wall time per image (s), batched, on this machine.
    pub seconds_per_image: f64,
    /// Model calls per image batch.
    pub model_calls: usize,
}

/// Generates one image per prompt of `set` with `template`'s settings (prompts replaced, batches
/// of `batch`, batch `i` seeded `seed + i`).
pub fn generate_set(
    pipeline: &VqDiffusionPipeline,
    template: &GenerationOptions,
    prompts: &[String],
    batch: usize,
    seed: u64,
) -> anyhow::Result<(Vec<RgbImage>, usize)> {
    let mut images = Vec::with_capacity(prompts.len());
    let mut calls = 0;
    for (i, chunk) in prompts.chunks(batch.max(1)).enumerate() {
        let mut options = template.clone();
        options.prompts = chunk.to_vec();
        options.num_images_per_prompt = 1;
        let out =
            pipeline.generate(&options, &mut SeededNoise::new(seed + i as u64), |_| Ok(()))?;
        calls = out.model_calls;
        images.extend(out.images);
    }
    Ok((images, calls))
}

/// Oracle all-correct rate of `images` against `specs`.
pub fn all_correct_rate(specs: &[&SceneSpec], images: &[&RgbImage]) -> f64 {
    let mut report = FaithfulnessReport::default();
    for (spec, image) in specs.iter().zip(images) {
        report.add(&judge(spec, &analyse(image)));
    }
    report.all_correct_rate()
}

/// Scores generated `images` (one per prompt of `set`, in order).
pub fn score_images(
    label: impl Into<String>,
    set: &PromptSet,
    images: &[RgbImage],
    net: &FeatureNet,
    seconds_per_image: f64,
    model_calls: usize,
) -> anyhow::Result<VariantScore> {
    let rate = |objects: usize| {
        let (specs, imgs): (Vec<_>, Vec<_>) = set
            .specs
            .iter()
            .zip(images)
            .zip(&set.objects)
            .filter(|(_, k)| **k == objects)
            .map(|(p, _)| p)
            .unzip();
        if specs.is_empty() {
            f64::NAN
        } else {
            all_correct_rate(&specs, &imgs)
        }
    };
    Ok(VariantScore {
        label: label.into(),
        single_all_correct: rate(1),
        pair_all_correct: rate(2),
        fid: net.frechet_distance(images, &set.real)?,
        seconds_per_image,
        model_calls,
    })
}

/// Scores `template` on `set` (see the module docs).
pub fn score_variant(
    label: impl Into<String>,
    pipeline: &VqDiffusionPipeline,
    set: &PromptSet,
    template: &GenerationOptions,
    net: &FeatureNet,
    batch: usize,
    seed: u64,
) -> anyhow::Result<(VariantScore, Vec<RgbImage>)> {
    let start = Instant::now();
    let (images, model_calls) = generate_set(pipeline, template, &set.prompts, batch, seed)?;
    let seconds_per_image = start.elapsed().as_secs_f64() / images.len().max(1) as f64;
    let score = score_images(label, set, &images, net, seconds_per_image, model_calls)?;
    Ok((score, images))
}

/// The scores as a table (text and CSV).
pub fn score_table(scores: &[VariantScore]) -> ResultTable {
    score_table_with(scores, &[])
}

/// [`score_table`] with more columns after the standard ones: `(name, one value per score,
/// decimals shown)`.
pub fn score_table_with(scores: &[VariantScore], extra: &[(&str, Vec<f64>, usize)]) -> ResultTable {
    let mut columns = vec![
        "variant",
        "single_all_correct",
        "pair_all_correct",
        "fid",
        "seconds_per_image",
        "model_calls",
    ];
    columns.extend(extra.iter().map(|(name, _, _)| *name));
    let mut table = ResultTable::new(&columns);
    for (i, s) in scores.iter().enumerate() {
        let mut text = vec![
            s.label.clone(),
            format!("{:.3}", s.single_all_correct),
            format!("{:.3}", s.pair_all_correct),
            format!("{:.2}", s.fid),
            format!("{:.4}", s.seconds_per_image),
            s.model_calls.to_string(),
        ];
        let mut csv = vec![
            s.label.clone(),
            s.single_all_correct.to_string(),
            s.pair_all_correct.to_string(),
            s.fid.to_string(),
            s.seconds_per_image.to_string(),
            s.model_calls.to_string(),
        ];
        for (_, values, decimals) in extra {
            text.push(format!("{:.*}", decimals, values[i]));
            csv.push(values[i].to_string());
        }
        table.push(text, csv);
    }
    table
}

/// Command-line options shared by the studies that sample from one trained model.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplerStudyArgs {
    /// A few prompts and settings (seconds; CI).
    #[arg(long)]
    pub quick: bool,
    /// Model folder (default: the embedded shape-world model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// One-object test prompts.
    #[arg(long, default_value_t = 200)]
    pub single: usize,
    /// Two-object test prompts.
    #[arg(long, default_value_t = 200)]
    pub pair: usize,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplerStudyArgs {
    /// The model folder.
    pub fn model_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.model {
            Some(m) => m.clone(),
            None => vq_pipeline::default_model_dir()?,
        })
    }

    /// The prompt set: 4 + 4 in quick mode.
    pub fn prompt_set(&self) -> PromptSet {
        if self.quick {
            PromptSet::new(Split::Test, 4, 4)
        } else {
            PromptSet::new(Split::Test, self.single, self.pair)
        }
    }
}
